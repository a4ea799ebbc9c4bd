"""What both HTTP servers share, ``serve`` (the OpenAI-compatible model server in
:mod:`quillrl.backends.server`) and ``serve-reward`` (:mod:`quillrl.serving`): limits, auth,
errors and uvicorn (:mod:`.http`), and the fair batching scheduler (:mod:`.scheduler`).

A low layer: it imports only ``quillrl.config``, so the backends and the servers above them can
all use it."""
