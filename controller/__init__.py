"""Use cases of the chat pages. Imports no streamlit."""
