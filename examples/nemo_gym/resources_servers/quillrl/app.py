"""NeMo Gym's entrypoint for the quillrl resources server (configs/nemo_gym_quillrl.yaml).

The server is ``quillrl.integrations.nemo_gym.QuillRLResourcesServer``; this file only lets NeMo
Gym's launcher find it (it runs ``resources_servers/<name>/<entrypoint>`` under a search root).
"""

from quillrl.integrations.nemo_gym import QuillRLResourcesServer

if __name__ == "__main__":
    QuillRLResourcesServer.run_webserver()
