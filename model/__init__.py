"""Data and persistence: messages and the conversation store. Imports neither streamlit nor llama_index.llms."""
