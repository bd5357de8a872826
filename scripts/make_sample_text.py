#!/usr/bin/env python3
"""Builds experiments/data/sample_wiki.raw: the text the main command uses
when WikiText-2 is not on the machine. It is the prompt sentences of
experiments/data/prompts.json (provenance in that file's "source" field),
laid out in WikiText-2's raw format: " = Heading = " lines, paragraphs as
single lines, blank lines between them."""
import json, pathlib

root = pathlib.Path(__file__).resolve().parent.parent
d = json.loads((root / "experiments/data/prompts.json").read_text())
out = []
sections = [(k, d[k]) for k in ("DIRECTION_PROMPTS", "EXPERIMENT_PROMPTS", "GRADIENT_PROMPTS")]
sections.append(("LEGACY_PROMPTS", d["legacy_v1"]["AMBIGUOUS_WORDS"]))
for key, table in sections:
    for word, entry in table.items():
        sents = []
        def walk(o):
            if isinstance(o, str):
                if " " in o.strip():
                    sents.append(o.strip().rstrip(".") + ".")
            elif isinstance(o, dict):
                for v in o.values(): walk(v)
            elif isinstance(o, list):
                for v in o: walk(v)
        walk(entry)
        out += ["", f" = {word.capitalize()} ({key.split('_')[0].lower()}) = ", ""]
        for i in range(0, len(sents), 6):
            out.append(" " + " ".join(sents[i:i + 6]) + " ")
            out.append("")
(root / "experiments/data/sample_wiki.raw").write_text("\n".join(out) + "\n")
