"""The REST API on django-ninja (docs/api.md).

`api` builds the NinjaAPI (auth, JSON parsing, the one error handler), `views` holds one Router per
resource, `schemas` every body in and out, `parsing` what ninja does not read for us, `errors` the
faults only a request can have, `urls` mounts it all.
"""
