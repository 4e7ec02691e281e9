"""selfguide studio: the entry point of the Streamlit app (``make studio``).

What it does: runs the frame (``studio.app.frame``: page config, sidebar, ``st.navigation``
over ``studio/pages/*.py``). The pages live outside a top-level ``pages/`` folder, so
Streamlit never treats them as a legacy multipage app: every address, a deep link or a
refresh included, runs this frame first. What it does not do: any work of a page, or hold
state beyond the pointers in ``studio.app.state``.
"""

from __future__ import annotations

from studio.app import frame
frame.main()
