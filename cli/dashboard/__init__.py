"""`tinykube dashboard`: a live web view of the cluster, served on loopback behind a secret.

    server.py   the HTTP server: why it runs beside the API server, not in it; routes, headers
    auth.py     the per-run secret: printed URL, then an HttpOnly SameSite=Strict cookie
    live.py     informers on nodes, pods, Services, Endpoints -> server-sent events
    view.py     API objects -> the JSON document the page draws (pure)
    static/     the page: index.html, dashboard.css, dashboard.js (no framework, no CDN)

The command is cli/cmd_dashboard.py; the packet path comes from netplugin/pathview.py.
docs/dashboard.md says what the page shows, how it is secured and how it is tested.
"""
