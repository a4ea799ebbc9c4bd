"""HTTP serving: the group-aware reward server (``serve-reward``) and what it shares with the
OpenAI-compatible model server (``serve``): limits, auth, errors, uvicorn (:mod:`.http`)."""
