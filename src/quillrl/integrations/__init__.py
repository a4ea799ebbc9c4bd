"""Adapters that let engines score with quillrl: verl (:mod:`.verl`), slime (:mod:`.slime`), TRL
reward functions calling a remote server (:mod:`.trl`), a NeMo Gym resources server
(:mod:`.nemo_gym`, imported only where NeMo Gym is installed); OpenRLHF needs no code, only
``--reward.remote_url http://HOST:PORT/openrlhf`` (docs/scale.md). The group logic lives in the
reward server (``quillrl serve-reward``), which every adapter calls through :mod:`.client`."""
