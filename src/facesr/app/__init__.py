"""``facesr app``: a local web page that runs ``facesr upscale`` for analysts who do not use a
terminal. ``server`` owns the HTTP API and its safety rules (session token, upload checks,
allowed folders), ``jobs`` runs ``facesr upscale`` and follows its progress, ``results`` reads
the records it writes (cards, history, zip), ``static/`` holds the page (HTML, CSS, JS; no
CDN). Needs the ``app`` extra: ``pip install 'facesr[app]'`` (FastAPI, uvicorn,
python-multipart).
"""
