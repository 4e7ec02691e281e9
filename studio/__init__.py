"""selfguide studio: the Streamlit app over the selfguide library (frame, pages, views).

`app/` holds what every page shares, `views/` one view module per page, `pages/` the thin
pages the frame routes to. Nothing here computes what the library computes.
"""
