"""Writes qa_em_cases.jsonl: tricky responses and gold answers for the parity
test of pipeline/reward against Search-R1's qa_em.py. Deterministic; run
with python3 from this folder. The expected results are not computed here:
TestQAEMLive runs qa_em.py itself (IGSEARCH_WRITE_GOLDEN=1 writes
qa_em_golden.jsonl)."""
import json, string

cases = []


def add(response, golds, note):
    cases.append({"response": response, "golden_answers": golds, "note": note})


# 1. Answer extraction (the regex of extract_solution and str.strip()).
extraction = [
    ("no tags at all", "Paris"),
    ("<answer>Paris</answer>", "single"),
    ("<answer> Paris </answer>", "spaces"),
    ("<answer>\n\tParis\r\n</answer>", "ascii white space"),
    ("<answer>\x1cParis\x1f</answer>", "strip \\x1c..\\x1f"),
    ("<answer>\x1d\x1eParis\x85</answer>", "strip \\x1d \\x1e NEL"),
    ("<answer>\u00a0Paris\u3000</answer>", "strip NBSP ideographic space"),
    ("<answer>\u2028Paris\u2029</answer>", "strip line/paragraph separator"),
    ("<answer>\u200bParis\u200b</answer>", "zero-width space is not white space"),
    ("<answer>\ufeffParis</answer>", "BOM is not white space"),
    ("<answer>\u180eParis</answer>", "Mongolian vowel separator"),
    ("<answer>Lyon</answer> then <answer>Paris</answer>", "last of two"),
    ("<answer>Paris</answer> <answer>Lyon", "unclosed last"),
    ("<answer>Paris", "unclosed only"),
    ("Paris</answer>", "close only"),
    ("<answer>a<answer>Paris</answer>", "nested open: non-greedy from the first"),
    ("<answer></answer>", "empty answer"),
    ("<answer>   </answer>", "blank answer"),
    ("<Answer>Paris</Answer>", "tags are case-sensitive"),
    ("<answer >Paris</answer>", "tag with space"),
    ("<answer>Pa\nris</answer>", "newline inside (DOTALL)"),
    ("<think>x</think>\n<search>q</search>\n\n<information>Doc 1(Title: \"Paris\") Paris</information>\n\n<answer> Paris </answer>", "full trajectory"),
    ("<answer>Lyon</answer><answer></answer>", "last is empty"),
    ("<answer><answer></answer></answer>", "nested tags"),
    ("<answer>Paris</answer></answer>", "extra close"),
]
for resp, note in extraction:
    add(resp, ["Paris"], "extract: " + note)

# 2. Normalisation: words and their gold answers.
words = [
    "The Beatles", "A Tale of Two Cities", "an apple", "THE END", "Theatre", "the-end", "the_end",
    "U.S.A.", "rock'n'roll", "1,000", "3.14", "$100", "50%", "C++", "AT&T", "e-mail", "O'Neil",
    "Café", "Cafe\u0301", "the\u0301", "a\u0300", "\u00e9the", "na\u00efve", "Stra\u00dfe", "STRASSE", "\u1e9e",
    "\u0130stanbul", "\u0130", "I\u0307stanbul", "\u0131stanbul", "DIYARBAKIR",
    "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3", "\u03a3", "\u0391\u03a3", "\u03a3\u0391", "\u0391\u03a3.", "\u0391\u03a3'",
    "\u0391\u03a3\u0301", "\u0391\u03a3 \u0392", "\u0391\u03a3\u00ad\u0392", "\u0391.\u03a3", "1\u03a3", "\u0391\u03a3\u0392\u03a3",
    "\u212a", "\u2126", "\u01c5", "\u01c4", "\u1f88", "\u13a0\u13a1", "\uff21\uff22\uff23", "x\u00b2", "\u0663",
    "\u4e2d\u56fd", "\u6771\u4eac", "\U0001f600 smile", "\u00bfQu\u00e9?", "\u00a1Hola!", "\u201cquoted\u201d",
    "\u00abguillemets\u00bb", "em\u2014dash", "en\u2013dash", "a\u00b7b", "\u30fbthe\u30fb", "the\u3002", "\u2460 the",
    "the\x1cthe", "a\x1db", "x\x1ethe\x1fy", "new\x85line", "non\u00a0breaking", "line\u2028sep", "ideo\u3000space",
    "zero\u200bwidth", "\u00c5ngstr\u00f6m", "\u212bngstr\u00f6m", "\u0041\u030a", "\u00df", "\ufb01", "\u0149",
    "the the the", "a an the", "The", "?", "...", "", "  ", "_", "An", "an\u00e9", "the\u2019s", "the's",
    "\u05d0\u05d1", "\u0627\u0644\u0642\u0627\u0647\u0631\u0629", "\u0928\u092e\u0938\u094d\u0924\u0947", "\u1100\u1161",
    "\ud55c\uad6d", "\u0e01\u0e23\u0e38\u0e07\u0e40\u0e17\u0e1e", "Ⅻ", "\u2167 the", "\u00bd", "x\u0345",
]
for w in words:
    resp = "<answer> " + w + " </answer>"
    add(resp, [w], "norm: self")
    add(resp, [w.upper()], "norm: upper gold")
    add(resp, ["the " + w.lower() + "!"], "norm: article + punctuation gold")

# 3. Every ASCII punctuation character, inside and around a word.
for ch in string.punctuation:
    add("<answer>a" + ch + "the" + ch + "b</answer>", ["a the b", "athb"], "punct " + repr(ch))

# 4. Gold answers that normalise to nothing, and several golds.
add("<answer>anything</answer>", ["The"], "gold normalises to empty (subem matches)")
add("<answer>the</answer>", ["a"], "both empty")
add("<answer>Paris France</answer>", ["France", "Lyon"], "subem second token")
add("<answer>Paris</answer>", ["Lyon", "PARIS."], "second gold")
add("<answer>parisian</answer>", ["Paris"], "subem prefix")
add("<answer>\u0130</answer>", ["i\u0307"], "dotted I vs i + combining dot")
add("<answer>\u0130</answer>", ["i"], "dotted I vs i")
add("<answer>\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c2</answer>", ["\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3"], "final sigma lower")
add("<answer>\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c3</answer>", ["\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3"], "non-final sigma lower")

with open("qa_em_cases.jsonl", "w", encoding="utf-8") as f:
    for c in cases:
        f.write(json.dumps(c, ensure_ascii=False) + "\n")
print(len(cases), "cases")
