"""The REST API (SPEC §7): plain Django views, JSON in and out, bearer-token auth.

`urls` routes, `http.route` wraps every endpoint (auth, method check, error rendering),
`bodies` parses request bodies, `views` calls one service per request, `rendering` turns
models into JSON, `openapi` describes it all.
"""
