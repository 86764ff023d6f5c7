"""Writes four logged search trajectories (JSONL: id, prompt, response,
golden_answers), two searches each, the second one's passage unrelated:
the input the real-size and residency benches give `igsearch score-ig`.

usage: python3 tools/bench/logged_trajectories.py OUT.jsonl
"""
import json
import sys

QA = [("who founded the city of Arlen?", "Mara Voss"), ("what river runs through Tesk?", "the Ilve"),
      ("when was the Halden bridge built?", "1874"), ("which country is Orvik in?", "Norland")]

with open(sys.argv[1], "w") as f:
    for i, (q, a) in enumerate(QA):
        resp = (f"<think>I need to search.</think>\n<search> {q} </search>\n\n<information>Doc 1(Title: {a}) {a} is named in the record of {q}</information>\n\n"
                f"<think>Check once more.</think>\n<search> {a} </search>\n\n<information>Doc 1(Title: Note) An unrelated passage about weather.</information>\n\n"
                f"<answer> {a} </answer>")
        f.write(json.dumps({"id": f"q{i}", "prompt": f"Question: {q}\n", "response": resp, "golden_answers": [a]}) + "\n")
