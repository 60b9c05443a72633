"""The web playground's page (index.html, app.js, worker.js, playground.css) and the Python
its worker runs inside Pyodide (bridge.py); `netdsl playground` builds the site."""
