"""What netdsl shows in a browser: the interactive diagram (diagram.py, diagram.js) and the
JavaScript libraries vendored for it (vendor.py)."""
