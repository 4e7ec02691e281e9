"""The studio's shared frame: navigation, session state, cached models, the
jobs panel, widgets, messages and charts used by every page.

It holds no page's own view.
"""
