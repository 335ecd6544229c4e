"""Proposed alternatives: an OpenAI-compatible endpoint (a fake server on 127.0.0.1: good answers, nonsense,
a time-out), the offline proposer on the tiny model, and both through the anchor editor."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workbench.anchors import AnchorMap
from workbench.errors import WorkbenchError
from workbench.proposer import EndpointProposer, OfflineProposer, key_kind, parse_proposals
from workbench.widgets import AnchorEditor

TEXTS = [
    "Harry walked to Hogwarts with Hermione. At Hogwarts the lessons began, and Hermione read a book.",
    "Later Harry flew a Nimbus over the lake while Hermione watched from Hogwarts.",
]


class FakeChat:
    """A chat-completions server whose answer is chosen per test: a function of the request's user message."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answer = lambda user: "{}"
        self.delay = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                time.sleep(outer.delay)
                user = body["messages"][-1]["content"]
                reply = {"choices": [{"message": {"role": "assistant", "content": outer.answer(user)}}]}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    server = FakeChat()
    yield server
    server.close()


def _answer_for_requested(user: str) -> str:
    keys = [json.loads(line[2:].split(": ", 1)[0]) for line in user.splitlines() if line.startswith("- ")]
    table = {
        "Hogwarts": ["Northbrook Academy", "Hogwarts", "Kingsmere School"],
        "Hermione": ["Sarah", "Emily"],
        "Nimbus": "broom",
    }
    return "Sure! ```json\n" + json.dumps({k: table.get(k, ["x"]) for k in keys}) + "\n```"


def test_endpoint_proposer_batches_keys_and_cleans_answers(fake):
    fake.answer = _answer_for_requested
    prop = EndpointProposer(
        fake.url, model="fake", target="Harry Potter", batch_size=2, anchors=AnchorMap({"Harry": ["Jon"]})
    )
    got = prop(["Hogwarts", "Hermione", "Nimbus"], {"Hogwarts": [("walked to ", " with")]})
    assert got == {
        "Hogwarts": ["Northbrook Academy", "Kingsmere School"],
        "Hermione": ["Sarah", "Emily"],
        "Nimbus": ["broom"],
    }  # the key itself is dropped, a single string becomes a list
    assert len(fake.requests) == 2  # two keys per request
    first = fake.requests[0]
    assert first["model"] == "fake" and "Harry Potter" in first["messages"][0]["content"]
    assert "walked to [Hogwarts] with" in first["messages"][1]["content"]


@pytest.mark.parametrize(
    "answer, needle",
    [
        ("I cannot help with that.", "without a JSON object"),
        ('{"Voldemort": ["x"]}', "none of the 1 requested"),
        ('{"Hogwarts": [1, 2]}', "none of the 1 requested"),
    ],
)
def test_endpoint_nonsense_gets_a_clear_error(fake, answer, needle):
    fake.answer = lambda user: answer
    with pytest.raises(WorkbenchError, match=needle) as exc:
        EndpointProposer(fake.url, model="fake")(["Hogwarts"], {})
    assert fake.url in str(exc.value)


def test_endpoint_timeout_and_unreachable(fake):
    fake.delay = 2.0
    with pytest.raises(WorkbenchError, match=r"did not answer within 0.5 s"):
        EndpointProposer(fake.url, model="fake", timeout=0.5)(["Hogwarts"], {})
    with pytest.raises(WorkbenchError, match="unreachable"):
        EndpointProposer("http://127.0.0.1:9", model="fake", timeout=2)(["Hogwarts"], {})


def test_parse_and_kind():
    assert parse_proposals('{"A b": ["c", " c ", "A b", "d"]}', ["A b"]) == {"A b": ["c", "d"]}
    assert key_kind("Order of the Phoenix") == "name" and key_kind("wand") == "thing"


def test_offline_proposer_keeps_the_kind_and_never_proposes_target_words(tiny):
    amap = AnchorMap({"Harry": ["Jon"], "Hogwarts": ["Northbrook"], "Hermione": ["Sarah"]})
    prop = OfflineProposer(tiny, amap, n=3, top_k=20)
    ed = AnchorEditor(amap, texts=TEXTS)
    got = prop(["Hermione", "lessons"], {k: ed.contexts(k) for k in ("Hermione", "lessons")})
    assert set(got) == {"Hermione", "lessons"}
    banned = {"harry", "hogwarts", "hermione"}
    for key, alts in got.items():
        assert len(alts) <= 3 and len(set(alts)) == len(alts)
        for a in alts:
            assert a.lower() not in banned and a != key
            assert a[0].isupper() == (key == "Hermione"), (key, a)


def test_editor_proposals_need_approval_and_errors_keep_the_map(fake, tiny):
    fake.answer = _answer_for_requested
    amap = AnchorMap({"Harry": ["Jon"]})
    ed = AnchorEditor(
        amap,
        texts=TEXTS,
        proposers={"endpoint": EndpointProposer(fake.url, model="fake"), "offline": OfflineProposer(tiny, amap, n=2)},
    )
    ed.accept_suggestion("Hogwarts")
    ed.accept_suggestion("Hermione")
    assert set(ed.lacking()) == {"Hogwarts", "Hermione"}
    before = dict(ed.anchors.entries)
    ed.widget
    assert ed.propose_lacking("endpoint")
    assert ed.anchors.entries == before  # shown, not written
    assert ed.proposals["Hermione"]["endpoint"] == ["Sarah", "Emily"]
    assert ed.propose(["Hermione"], "offline") and len(ed.proposals["Hermione"]) == 2
    ed.select("Hermione")
    use = [b for row in ed._w["proposals"].children for b in row.children if "wb-use-proposal" in b._dom_classes]
    use[0].click()  # the endpoint's proposal
    assert ed.anchors.entries["Hermione"] == ["Sarah", "Emily"] and ed.lacking() == ["Hogwarts"]
    # a nonsense answer: one clear message in the status line, nothing lost
    fake.answer = lambda user: "<html>502 Bad Gateway</html>"
    kept = dict(ed.anchors.entries)
    assert ed.propose(["Hogwarts"], "endpoint") is False
    assert ed.status.startswith("error: endpoint proposer") and "JSON" in ed.status
    assert ed.anchors.entries == kept and ed.proposals["Hermione"]["endpoint"] == ["Sarah", "Emily"]


def test_cli_proposals_go_to_a_file_and_bad_answers_exit_2(fake, tmp_path, capsys):
    from workbench.cli import main

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text(" ".join(TEXTS))
    amap = tmp_path / "map.json"
    amap.write_text(json.dumps({"anchors": {"Hogwarts": ["x"], "Hermione": ["y"]}}))
    before = amap.read_text()
    args = [
        "anchors",
        str(amap),
        "--corpus",
        str(tmp_path / "corpus"),
        "--propose",
        "endpoint",
        "--endpoint",
        fake.url,
        "--endpoint-model",
        "fake",
        "--out",
        str(tmp_path / "p.json"),
    ]
    fake.answer = _answer_for_requested
    assert main(args) == 0
    got = json.loads((tmp_path / "p.json").read_text())["proposals"]
    assert got == {"Hogwarts": ["Northbrook Academy", "Kingsmere School"], "Hermione": ["Sarah", "Emily"]}
    assert "At Hogwarts" in fake.requests[-1]["messages"][1]["content"]  # contexts from the corpus
    fake.answer = lambda user: "no idea"
    assert main(args) == 2 and "without a JSON object" in capsys.readouterr().err
    fake.answer, fake.delay = _answer_for_requested, 2.0
    assert main(args + ["--timeout", "0.5"]) == 2 and "did not answer within 0.5 s" in capsys.readouterr().err
    assert amap.read_text() == before
    dup = tmp_path / "dup.csv"
    dup.write_text("key,alternatives\nHarry,Jon\nHarry,Tom\n")
    assert main(["anchors", str(dup)]) == 2 and "repeats line 2" in capsys.readouterr().err


def test_no_proposal_reuses_a_word_of_any_key():
    from workbench.anchors import AnchorMap
    from workbench.proposer import OfflineProposer, _clean

    amap = AnchorMap({"Harry": ["Jon"], "Pansy Parkinson": ["Amy Jones"], "Order of the Phoenix": ["Guild of Lamps"]})
    banned = OfflineProposer(None, amap)._banned("Pansy Parkinson")
    got = _clean(
        "Pansy Parkinson", ["Harry Potter", "Christopher Lee", "Lee Parkinson", "Anne of the Hills"], banned, 4
    )
    assert got == ["Christopher Lee", "Anne of the Hills"]  # particles of other keys stay allowed
