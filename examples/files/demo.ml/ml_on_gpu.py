"""A namespace file of demo.ml: `python manage.py demo` uploads it (or `python manage.py nsfiles
upload demo.ml examples/files/demo.ml`), and examples/ml_on_gpu.yml runs it on the gpu group."""
import json
import platform

weights = [round(0.1 * epoch, 1) for epoch in range(1, 4)]
for epoch, loss in enumerate(reversed(weights), start=1):
    print(f"epoch {epoch}: loss {loss}")
with open("model.json", "w") as model:
    model.write(json.dumps({"weights": weights, "trained_on": platform.node()}) + "\n")
print(json.dumps({"outputs": {"epochs": len(weights), "accuracy": 0.93}}).join(["::", "::"]))
