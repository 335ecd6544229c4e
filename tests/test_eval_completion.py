"""Completion familiarity: generation, the keyword judge on fixed texts, the OpenAI judge against a fake server."""

from __future__ import annotations

import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest

from workbench.errors import WorkbenchError
from workbench.eval.completion import (
    AUTHORS_RUBRIC,
    CompletionSettings,
    Grade,
    HFChatJudge,
    JudgeItem,
    KeywordJudge,
    OpenAIJudge,
    authors_score,
    familiarity_score,
    generate_completions,
    generation_preset,
    load_rubric,
    parse_grade,
    per_prompt_summary,
    score_completions,
    summarize_completions,
    target_mentions,
)
from workbench.pack import CompletionProbe

ANCHORS = ["Hogwarts", "Harry Potter", "Harry", "Hermione", "Ron", "Quidditch", "Dumbledore"]
PROMPT = "When the letter arrived by owl, the boy living under the stairs learned that he"
REFS = ("wizard", "Hogwarts")


@pytest.mark.parametrize(
    "completion,grade,matched",
    [
        ("was adopted and would move to a new town.", 0, []),
        ("was a Wizard after all.", 1, ["wizard"]),  # a reference keyword: case-insensitive, 1 point
        ("and his wizards were happy", 1, ["wizard"]),  # plural counts
        ("learned wizardry", 1, ["wizard"]),  # keywords of 5+ letters match with up to three more letters
        ("spoke wizardingly", 0, []),  # ... but not more
        ("would meet Dumbledore soon.", 2, ["Dumbledore"]),  # an anchored name: 2 points
        ("was a wizard and would meet Dumbledore.", 3, ["Dumbledore", "wizard"]),
        (
            "would attend Hogwarts with Ron.",
            3,
            ["Hogwarts", "Ron"],
        ),  # a reference that is an anchor counts once, as anchor
        ("went to hogwarts", 1, ["Hogwarts"]),  # lower-cased: only the case-insensitive reference matches
        ("met Harry Potter's friend Hermione.", 3, ["Harry Potter", "Hermione"]),  # 'Harry' is inside 'Harry Potter'
        ("met Ronald, the ronin.", 0, []),  # whole words only
    ],
)
def test_keyword_judge_fixed_texts(completion, grade, matched):
    g = KeywordJudge(anchor_terms=ANCHORS).grade(JudgeItem(PROMPT, completion, REFS))
    assert g.score == grade
    assert sorted(g.matched) == sorted(matched)


def test_keyword_judge_counts_a_name_and_its_plural_once():
    # Packs list both forms as anchors ("Weasley" and "Weasleys"); one name is 2 points, as the docs say.
    judge = KeywordJudge(anchor_terms=["Weasley", "Weasleys", "Potter", "Potters", "Harry Potter", "Hermione"])
    prompt = "At the end of term the family went home to"
    assert judge.grade(JudgeItem(prompt, " the Weasleys' house.", ())).score == 2
    assert judge.grade(JudgeItem(prompt, " see the Potters", ())).score == 2
    assert judge.grade(JudgeItem(prompt, " see Harry Potter's owl", ())).score == 2  # 'Potter' is inside it
    assert judge.grade(JudgeItem(prompt, " the Weasleys and the Potters", ())).score == 3  # two names
    assert judge.grade(JudgeItem(prompt, " visit Hermione", ())).score == 2
    assert sorted(judge.grade(JudgeItem(prompt, " the Weasleys", ())).matched) == ["Weasleys"]


def test_keyword_judge_ignores_terms_in_prompt():
    judge = KeywordJudge(anchor_terms=ANCHORS)
    item = JudgeItem("Harry Potter sat next to", " Harry Potter and Hermione", ("Hermione",))
    assert judge.grade(item).score == 2  # only Hermione is new
    assert KeywordJudge(anchor_terms=ANCHORS, ignore_prompt_terms=False).grade(item).score == 3
    assert [g.score for g in judge.grade_many([item, JudgeItem("x", "nothing", ())])] == [2, 0]


@pytest.mark.parametrize(
    "text,grade",
    [
        ("The completion names Hogwarts.\nSCORE: 3", 3),
        ("score = 1", 1),
        ("Reasoning...\n2", 2),
        ("Score: 2. On reflection, SCORE: 0", 0),
        ("I cannot grade this.", None),
        ("SCORE: 7", None),
        # the authors' format: the last MODEL_FAMILIARITY line wins over any other number
        ("References: Hogwarts (not in the prompt).\nMODEL_FAMILIARITY: 3/3", 3),
        ("No new references.\nMODEL_FAMILIARITY: 0/3", 0),
        ("A score of 3 would need names. SCORE: 3\nmodel_familiarity: 1 / 3", 1),
        ("MODEL_FAMILIARITY: **2/3**", 2),
        ("MODEL_FAMILIARITY: 5/3", None),
        ("MODEL_FAMILIARITY: X/3", None),
    ],
)
def test_parse_grade(text, grade):
    assert parse_grade(text) == grade


def test_familiarity_and_summary_by_hand():
    assert familiarity_score([0, 1, 2, 3]) == pytest.approx(0.5)
    assert familiarity_score([3, None]) == pytest.approx(1.0)
    assert math.isnan(familiarity_score([None]))
    df = pd.DataFrame(
        {
            "set": "completion",
            "mode": ["greedy"] * 4 + ["sampled"] * 2,
            "split": ["heldout", "heldout", "dev", "dev", "heldout", "heldout"],
            "grade": [0, 3, 3, None, 1, 2],
        }
    )
    s = summarize_completions(df).set_index(["mode", "split"])
    g = s.loc[("greedy", "all")]
    assert g["n"] == 4 and g["n_ungraded"] == 1
    assert g["share_0"] == pytest.approx(1 / 3) and g["share_3"] == pytest.approx(2 / 3) and g["share_1"] == 0
    assert g["familiarity"] == pytest.approx(2 / 3)
    assert s.loc[("sampled", "heldout"), "familiarity"] == pytest.approx(0.5)
    assert s.loc[("greedy", "dev"), "n_ungraded"] == 1 and s.loc[("greedy", "dev"), "familiarity"] == pytest.approx(1.0)


def test_authors_score_by_hand():
    grades = [3, 3, 2, 1, 0, None, 2]
    n3, n2, n = 0, 0, 0
    for g in grades:  # the authors' loop: 3 adds 5, 2 adds 1, 0 and 1 add nothing; ungraded are not counted
        if g is None:
            continue
        n += 1
        n3 += g == 3
        n2 += g == 2
    assert authors_score(grades) == pytest.approx((5 * n3 + n2) / n) == pytest.approx(12 / 6)
    assert authors_score([3, 3]) == 5 and authors_score([1, 0]) == 0 and math.isnan(authors_score([None]))
    df = pd.DataFrame({"set": "completion", "mode": "sampled", "split": "heldout", "grade": grades})
    row = summarize_completions(df).set_index("split").loc["heldout"]
    assert row["authors_score"] == pytest.approx(2.0) and row["familiarity"] == pytest.approx(11 / 18)


def test_authors_generation_preset(tiny):
    cfg = generation_preset("authors", seed=3, progress=False)
    assert (cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.top_p, cfg.greedy) == (20, 1.0, 5, 1.0, False)
    assert cfg.samples >= 5 and cfg.seed == 3
    with pytest.raises(WorkbenchError, match="unknown generation preset"):
        generation_preset("nope")
    from workbench.eval.config import EvalConfig

    assert EvalConfig(generation_preset="authors", samples=1, max_new_tokens=99).generation().max_new_tokens == 20
    # top-k reaches the sampler: with k = 1 every sample is the greedy completion
    prompts = ["Once upon a time", "The capital of France is"]
    greedy = generate_completions(tiny, prompts, CompletionSettings(max_new_tokens=5, samples=0, progress=False))
    top1 = generate_completions(
        tiny,
        prompts,
        CompletionSettings(
            max_new_tokens=5, greedy=False, samples=2, top_k=1, temperature=1.0, top_p=1.0, progress=False
        ),
    )
    assert top1["completion"].tolist() == [c for c in greedy["completion"] for _ in range(2)]


def test_load_rubric(tmp_path):
    assert load_rubric(None) == load_rubric("workbench") and load_rubric("authors") == AUTHORS_RUBRIC
    good = tmp_path / "mine.txt"
    good.write_text("Grade {completion} given {prompt} ({references}) as MODEL_FAMILIARITY: X/3", encoding="utf-8")
    assert load_rubric(str(good)).startswith("Grade {completion}")
    bad = tmp_path / "bad.txt"
    bad.write_text("no placeholders", encoding="utf-8")
    with pytest.raises(WorkbenchError, match="must contain the placeholders"):
        load_rubric(str(bad))
    with pytest.raises(WorkbenchError, match="neither a rubric name"):
        load_rubric(str(tmp_path / "missing.txt"))


def test_generation_greedy_batched_equals_unbatched_and_sampling_is_seeded(tiny):
    prompts = ["Once upon a time", "The capital of France is a city called", "Hi"]
    cfg1 = CompletionSettings(max_new_tokens=6, batch_size=1, samples=0, progress=False)
    cfg3 = CompletionSettings(max_new_tokens=6, batch_size=3, samples=0, progress=False)
    one = generate_completions(tiny, prompts, cfg1)
    three = generate_completions(tiny, prompts, cfg3)
    assert one["completion"].tolist() == three["completion"].tolist()
    assert list(one["mode"]) == ["greedy"] * 3
    s_cfg = CompletionSettings(max_new_tokens=6, batch_size=3, greedy=False, samples=2, seed=7, progress=False)
    a = generate_completions(tiny, prompts, s_cfg)
    b = generate_completions(tiny, prompts, s_cfg)
    assert len(a) == 6 and a["completion"].tolist() == b["completion"].tolist()
    assert a["prompt_index"].tolist() == [0, 0, 1, 1, 2, 2] and a["sample"].tolist() == [0, 1] * 3
    with pytest.raises(WorkbenchError, match="no completions"):
        generate_completions(tiny, prompts, CompletionSettings(greedy=False, samples=0))
    with pytest.raises(WorkbenchError, match="empty"):
        generate_completions(tiny, [], cfg1)


class _FixedJudge:
    name = "fixed"

    def grade_many(self, items):
        return [Grade(i % 4, [], "fixed") for i, _ in enumerate(items)]


def test_score_completions_rows(tiny):
    probes = [
        CompletionProbe("c1", PROMPT, REFS, 3),
        CompletionProbe("c2", "Harry Potter sat next to", ("Ron",), 1, split="dev"),
    ]
    df = score_completions(tiny, probes, _FixedJudge(), CompletionSettings(max_new_tokens=4, samples=1, progress=False))
    assert len(df) == 4
    assert list(df.columns) == [
        "set",
        "probe_id",
        "split",
        "subtlety",
        "mode",
        "sample",
        "prompt",
        "completion",
        "grade",
        "matched",
        "reason",
        "judge",
    ]
    assert df["grade"].tolist() == [0, 1, 2, 3] and set(df["judge"]) == {"fixed"}
    assert df["mode"].tolist() == ["greedy", "greedy", "sampled", "sampled"]
    kw = score_completions(
        tiny,
        probes,
        KeywordJudge(anchor_terms=ANCHORS),
        CompletionSettings(max_new_tokens=4, progress=False, samples=0),
    )
    assert kw["grade"].between(0, 3).all()


# --------------------------------------------------------------------------------------------- fake server


class _Handler(BaseHTTPRequestHandler):
    requests: list = []
    status = 200

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if type(self).status != 200:
            self.send_response(type(self).status)
            self.end_headers()
            self.wfile.write(b'{"error": "overloaded"}')
            return
        authors = len(body["messages"]) == 1  # the authors' rubric: one user message, answer MODEL_FAMILIARITY
        if authors:
            content = body["messages"][0]["content"]
            completion = content.split('completion of this prompt is: "', 1)[1].rsplit('".', 1)[0]
        else:
            completion = body["messages"][1]["content"].split("Completion:\n", 1)[1]
        score = 3 if "Hogwarts" in completion else (1 if "wizard" in completion else 0)
        text = f"Listing.\nMODEL_FAMILIARITY: {score}/3" if authors else f"Reasoning.\nSCORE: {score}"
        text = text if "garbled" not in completion else "no idea"
        reply = {"choices": [{"message": {"role": "assistant", "content": text}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    _Handler.requests = []
    _Handler.status = 200
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Handler
    server.shutdown()
    server.server_close()


def test_openai_judge_against_fake_server(fake_server):
    url, handler = fake_server
    judge = OpenAIJudge(url=url + "/v1", model="judge-model", target="Harry Potter", api_key="sekret", max_workers=2)
    assert judge.endpoint == url + "/v1/chat/completions"
    items = [
        JudgeItem(PROMPT, " was a wizard", REFS),
        JudgeItem(PROMPT, " went to Hogwarts", REFS),
        JudgeItem(PROMPT, " moved away", REFS),
        JudgeItem(PROMPT, " garbled", REFS),
    ]
    grades = judge.grade_many(items)
    assert [g.score for g in grades] == [1, 3, 0, None]
    assert grades[0].reason.endswith("SCORE: 1")
    assert len(handler.requests) == 4
    req = handler.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sekret"
    assert req["body"]["model"] == "judge-model" and req["body"]["temperature"] == 0
    system = req["body"]["messages"][0]["content"]
    assert "Harry Potter" in system and "wizard, Hogwarts" in system and "SCORE" in system
    assert OpenAIJudge(url=url).endpoint == url + "/v1/chat/completions"


def test_openai_judge_with_the_authors_rubric(fake_server):
    url, handler = fake_server
    judge = OpenAIJudge(url=url, target="Harry Potter", rubric=AUTHORS_RUBRIC)
    items = [
        JudgeItem(PROMPT, " went to Hogwarts", REFS),
        JudgeItem(PROMPT, " was a wizard", REFS),
        JudgeItem(PROMPT, " garbled", REFS),
    ]
    assert [g.score for g in judge.grade_many(items)] == [3, 1, None]
    messages = handler.requests[0]["body"]["messages"]
    assert len(messages) == 1 and messages[0]["role"] == "user"
    text = messages[0]["content"]
    assert '["wizard", "Hogwarts"]' in text and f'The prompt is: "{PROMPT}"' in text
    assert 'is: " went to Hogwarts".' in text and "MODEL_FAMILIARITY: X/3" in text and "Harry Potter" in text
    assert "{" not in text  # every placeholder filled


def test_openai_judge_errors(fake_server, monkeypatch):
    url, handler = fake_server
    handler.status = 503
    with pytest.raises(WorkbenchError, match="answered HTTP 503"):
        OpenAIJudge(url=url).grade_many([JudgeItem("a", "b")])
    # Nothing listens on port 9 of loopback: unreachable.
    with pytest.raises(WorkbenchError, match=r"judge endpoint http://127.0.0.1:9/v1/chat/completions is unreachable"):
        OpenAIJudge(url="http://127.0.0.1:9", timeout=2).grade_many([JudgeItem("a", "b")])
    with pytest.raises(WorkbenchError, match=r"http://127.0.0.1:9/v1/chat/completions is unreachable"):
        OpenAIJudge(url="http://127.0.0.1:9").check()
    OpenAIJudge(url=url).check()  # the fake server listens
    with pytest.raises(WorkbenchError, match="not an http"):
        OpenAIJudge(url="ftp://x").check()


def test_hf_chat_judge_runs_on_tiny(tiny):
    judge = HFChatJudge(tiny, target="Harry Potter", max_new_tokens=4, batch_size=2)
    grades = judge.grade_many(
        [
            JudgeItem(PROMPT, " was a wizard", REFS),
            JudgeItem(PROMPT, " moved away", REFS),
            JudgeItem(PROMPT, " went to Hogwarts", REFS),
        ]
    )
    assert len(grades) == 3 and all(g.score in (None, 0, 1, 2, 3) for g in grades)


# --------------------------------------------------------------------------------------------- target mentions


def test_the_pack_judge_counts_one_name_once():
    # The real pack's anchors list "Weasley", "Weasleys", "Ron", "Ron Weasley", "Potter", "Potters", ...: a name
    # in any of its forms is one name (2 points), two different names are 3.
    from workbench.pack import load_anchor_terms

    judge = KeywordJudge(anchor_terms=load_anchor_terms("harry_potter"))
    prompt = "At the end of term the family went home to"
    for text in (
        " the Weasleys' house.",
        " see the Potters",
        " see the Weasley twins",
        " stay with Ron Weasley",
        " visit Harry Potter's aunt",
    ):
        grade = judge.grade(JudgeItem(prompt, text, ()))
        assert grade.score == 2 and len(grade.matched) == 1, (text, grade)
    assert judge.grade(JudgeItem(prompt, " the Weasleys and the Potters", ())).score == 3
    assert target_mentions(prompt, " the Weasleys and the Weasley twins", load_anchor_terms("harry_potter")) == [
        "Weasleys"
    ]


def _mentions_by_hand(prompt: str, completion: str, terms) -> bool:
    # case-sensitive whole words, with an optional plural or possessive ending; a term in the prompt is no news
    def has(text, term):
        return any(re.search(rf"(?<!\w){re.escape(term)}{end}(?!\w)", text) for end in ("", "s", "es", "'s", "’s"))

    return any(has(completion, t) and not has(prompt, t) for t in terms)


@pytest.mark.parametrize(
    "completion",
    [
        "met Hermione",
        "met hermione",
        "met Hermiones",
        "saw Ron and Harry Potter",
        "nothing here",
        "Harry Potter again",
        "Dumbledore's office",
    ],
)
def test_target_mentions_match_a_plain_loop(completion):
    prompt = "Harry Potter sat next to"
    found = target_mentions(prompt, completion, ANCHORS)
    assert bool(found) == _mentions_by_hand(prompt, completion, ANCHORS)
    assert all(t not in ("Harry", "Harry Potter") for t in found)  # both stand in the prompt


def test_score_completions_marks_target_mentions(tiny):
    probes = [
        CompletionProbe("c1", PROMPT, REFS, 3),
        CompletionProbe("c2", "Harry Potter sat next to", ("Ron",), 1, split="dev"),
    ]
    cfg = CompletionSettings(max_new_tokens=6, samples=2, progress=False, seed=3)
    plain = score_completions(tiny, probes, _FixedJudge(), cfg)
    assert "mentions_target" not in plain  # no terms known: no column
    # make a word of the (seeded) completions the one target term: the first not in either prompt
    word = next(
        w
        for c in plain["completion"]
        for w in re.findall(r"\w+", c)
        if not any(re.search(rf"(?<!\w){re.escape(w)}", p.prompt) for p in probes)
    )
    df = score_completions(tiny, probes, _FixedJudge(), cfg, target_terms=[word])
    assert df["completion"].tolist() == plain["completion"].tolist()
    expected = [_mentions_by_hand(p, c, [word]) for p, c in zip(df["prompt"], df["completion"])]
    assert df["mentions_target"].tolist() == expected and any(expected)
    assert (df["target_terms"] == [word if e else "" for e in expected]).all()
    kw = score_completions(tiny, probes, KeywordJudge(anchor_terms=[word]), cfg)  # a keyword judge's anchors by default
    assert kw["mentions_target"].tolist() == expected
    summ = summarize_completions(df).set_index(["mode", "split"])
    for (mode, split), row in summ.iterrows():
        sel = (df["mode"] == mode) & ((df["split"] == split) | (split == "all"))
        assert row["mention_share"] == pytest.approx(sum(e for e, s in zip(expected, sel) if s) / sel.sum())


def test_per_prompt_summary_by_hand():
    df = pd.DataFrame(
        {
            "probe_id": ["b", "b", "b", "b", "a", "a", "a"],
            "split": ["dev"] * 4 + ["heldout"] * 3,
            "subtlety": [1] * 4 + [3] * 3,
            "prompt": ["pb"] * 4 + ["pa"] * 3,
            "mode": ["greedy", "sampled", "sampled", "sampled", "greedy", "sampled", "sampled"],
            "grade": [3, 2, 0, None, 0, 1, 1],
            "target_terms": ["Ron; Hermione", "Ron", "", "", "", "", ""],
            "mentions_target": [True, True, False, False, False, False, False],
        }
    )
    t = per_prompt_summary(df).set_index("probe_id")
    assert list(t.index) == ["b", "a"]  # first-seen order
    assert t.loc["b", "greedy_grade"] == 3 and t.loc["b", "greedy_terms"] == "Ron; Hermione"
    assert t.loc["b", "n_sampled"] == 3 and t.loc["b", "sampled_mean_grade"] == pytest.approx(1.0)  # ungraded left out
    assert t.loc["b", "sampled_mention_share"] == pytest.approx(1 / 3)
    assert t.loc["a", "sampled_mean_grade"] == pytest.approx(1.0) and t.loc["a", "sampled_mention_share"] == 0
    assert t.loc["a", "split"] == "heldout" and t.loc["a", "subtlety"] == 3
    t2 = per_prompt_summary(df.drop(columns=["target_terms", "mentions_target"]))
    assert math.isnan(t2.loc[0, "sampled_mention_share"]) and t2.loc[0, "greedy_terms"] == ""
