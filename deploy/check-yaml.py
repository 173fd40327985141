#!/usr/bin/env python3
"""Parses every YAML file under deploy/ and checks what a cluster would
refuse first: each Kubernetes document has apiVersion, kind and a name, the
settings in the ConfigMap are TOML, and every ConfigMap key the Deployment
mounts exists. Needs PyYAML (Debian: python3-yaml). No cluster is used."""

import pathlib
import sys
import tomllib

import yaml

root = pathlib.Path(__file__).resolve().parent
problems = []
docs = []
for path in sorted(root.rglob("*.y*ml")):
    try:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    except yaml.YAMLError as err:
        problems.append(f"{path}: {err}")

k8s = [(p, d) for p, d in docs if "kubernetes" in p.parts]
for path, doc in k8s:
    if doc.get("kind") == "Kustomization":
        for name in doc.get("resources", []):
            if not (path.parent / name).exists():
                problems.append(f"{path}: resource {name} is missing")
        continue
    for field in ("apiVersion", "kind"):
        if not doc.get(field):
            problems.append(f"{path}: no {field}")
    if not doc.get("metadata", {}).get("name"):
        problems.append(f"{path}: no metadata.name")

config_maps = {d["metadata"]["name"]: d for _, d in k8s if d.get("kind") == "ConfigMap"}
for name, cm in config_maps.items():
    for key, text in cm.get("data", {}).items():
        if key.endswith(".toml"):
            try:
                tomllib.loads(text)
            except tomllib.TOMLDecodeError as err:
                problems.append(f"ConfigMap {name}: {key}: {err}")

for path, doc in k8s:
    if doc.get("kind") != "Deployment":
        continue
    for volume in doc["spec"]["template"]["spec"].get("volumes", []):
        source = volume.get("configMap")
        if not source:
            continue
        cm = config_maps.get(source["name"], {}).get("data", {})
        for item in source.get("items", []):
            if item["key"] not in cm:
                problems.append(f"{path}: volume {volume['name']}: no key {item['key']}")

for line in problems:
    print(line)
print(f"{len(docs)} YAML documents checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
