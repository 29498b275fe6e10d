"""Run in a fresh process by benchmarks/app.py: time from interpreter start to the first request
served, then load every tab's models and report resident memory. Prints one JSON line."""
import json
import os
import sys
import time

T0 = time.perf_counter()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psutil  # noqa: E402

import app  # noqa: E402

t_import = time.perf_counter() - T0
app.demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), prevent_thread_lock=True,
                quiet=True, **app.LAUNCH_KWARGS)
from gradio_client import Client  # noqa: E402

client = Client(f"http://127.0.0.1:{sys.argv[1]}/", verbose=False)
client.predict("Swirls", api_name="/deepdream_preset")
t_first = time.perf_counter() - T0
rss_idle = psutil.Process().memory_info().rss
t = time.perf_counter()
for lazy in app.PIPELINES:
    lazy.get()
t_models = time.perf_counter() - t
rss_loaded = psutil.Process().memory_info().rss
print(json.dumps(dict(import_s=t_import, first_request_s=t_first, load_models_s=t_models,
                      rss_idle_mb=rss_idle / 2**20, rss_loaded_mb=rss_loaded / 2**20,
                      models=[m.title for m in app.PIPELINES])))
app.demo.close()
