"""The group-aware reward server (``serve-reward``): the group barrier, cross-client judge
batching, metrics and the engines' endpoints. The HTTP rules it shares with the model server
(``serve``) live in :mod:`quillrl.httpserve`."""
