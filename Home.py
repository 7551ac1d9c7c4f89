"""Parley's landing page: `streamlit run Home.py`."""

from view.home import render

render()
