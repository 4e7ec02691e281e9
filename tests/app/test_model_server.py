"""Issue 17, item 1 (studio): the Model page's "generate through a server" choice.

A loopback fake OpenAI-compatible server (the one of tests/backends/test_openai_backend.py, bound to
127.0.0.1) answers the Connect button and the try-a-prompt box; the Synthesize page's job
argv carries the server settings to the CLI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from sgtest.pages import all_text, button, metric

from selfguide.backends.openai_client import EMBEDDED_NAME
from studio.app import state

_spec = importlib.util.spec_from_file_location(
    "_openai_fake_server", Path(__file__).resolve().parents[1] / "backends" / "test_openai_backend.py")
_fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fake)
FakeServer = _fake.FakeServer

MODEL = "studio/pages/model.py"


@pytest.fixture()
def server():
    srv = FakeServer(models=(EMBEDDED_NAME,))
    yield srv
    srv.close()


def choose_server(at, url: str):
    at.switch_page(MODEL).run()
    at.radio(key=state.widget_key("model", "backend")).set_value("openai").run()
    at.text_input(key=state.widget_key("model_server", "base_url")).set_value(url).run()
    return at


def test_connect_lists_the_servers_models_and_tries_a_prompt(app, server):
    at = choose_server(app(), server.url)
    assert not at.exception
    assert [b.label for b in at.button if b.label == "Load model"] == []
    at.run()  # the sidebar is drawn before the page saves the settings: one rerun later
    assert any(f"generated through {server.url}" in c.value for c in at.sidebar.caption)
    text = all_text(at)
    assert "training and evaluation always load it in this process" in text
    assert "log-probabilities" in text and "rank" in text
    button(at, "Connect").click().run()
    assert not at.exception and not at.error
    assert metric(at, "Served model") == EMBEDDED_NAME
    assert metric(at, "Server") == server.url
    assert list(at.dataframe[0].value["model"]) == [EMBEDDED_NAME]
    assert any(server.url in c.value for c in at.sidebar.caption)
    saved = at.session_state[state._MODEL_CFG]
    assert saved["backend"] == "openai" and saved["base_url"] == server.url
    # the try-a-prompt box goes through the server
    at.text_area(key=state.widget_key("model", "prompt")).set_value("Say hi").run()
    button(at, "Generate").click().run()
    assert not at.exception and not at.error
    assert "echo:" in at.code[0].value
    assert any(p == "/v1/chat/completions" for p, _ in server.requests)


def test_a_bad_url_is_a_clear_error_and_connect_is_disabled(app):
    at = choose_server(app(), "localhost:8000")
    assert not at.exception
    assert at.error and "is not an http:// or https:// URL" in at.error[0].value
    assert button(at, "Connect").disabled


def test_unreachable_server_says_so_in_the_pages_words(app):
    srv = FakeServer(models=(EMBEDDED_NAME,))
    url = srv.url
    srv.close()
    at = choose_server(app(), url)
    button(at, "Connect").click().run()
    assert not at.exception
    assert at.error and "Cannot get an answer from" in at.error[0].value
    assert url in at.error[0].value and "Traceback" not in at.error[0].value


def test_another_model_needs_the_confirm_checkbox(app):
    srv = FakeServer(models=("tiny",))
    try:
        at = choose_server(app(), srv.url)
        button(at, "Connect").click().run()
        assert not at.exception
        assert at.error and "does not look like the model being finetuned" in at.error[0].value
        assert "--confirm-model" not in at.error[0].value  # in the page's words
        assert any("Confirm model" in i.value for i in at.info)
        at.checkbox(key=state.widget_key("model_server", "confirm_model")).check().run()
        button(at, "Connect").click().run()
        assert not at.error and metric(at, "Served model") == "tiny"
        assert at.session_state[state._MODEL_CFG]["confirm_model"] is True
    finally:
        srv.close()


def test_synthesize_job_argv_carries_the_server(app, runs, job_recorder, server):
    runs.task("r1")
    at = choose_server(app(run="r1"), server.url)
    at.text_input(key=state.widget_key("model_server", "served_model")).set_value(
        EMBEDDED_NAME).run()
    at.switch_page("studio/pages/synthesize.py").run()
    assert not at.exception
    button(at, "Start").click().run()
    assert not at.exception and len(job_recorder.calls) == 1
    argv = job_recorder.calls[0][2]
    opts = dict(zip(argv[4::2], argv[5::2]))
    assert opts["--backend"] == "openai" and opts["--base-url"] == server.url
    assert opts["--served-model"] == EMBEDDED_NAME
    from selfguide.cli import build_parser

    args = build_parser().parse_args(argv)  # exactly what the CLI parses
    assert args.backend == "openai" and args.base_url == server.url


def test_back_to_in_process_drops_the_server_from_the_config(app, server):
    at = choose_server(app(), server.url)
    at.radio(key=state.widget_key("model", "backend")).set_value("hf").run()
    assert not at.exception
    saved = at.session_state[state._MODEL_CFG]
    assert saved["backend"] == "hf" and saved["base_url"] == ""
    assert button(at, "Load model")


def test_selfinstruct_job_argv_carries_the_server(app, workspace, job_recorder, server):
    from sgtest.selfinstruct_runs import make_si_run

    from selfguide.cli import build_parser

    make_si_run(workspace)
    at = choose_server(app(run="si"), server.url)
    at.switch_page("studio/pages/synthesize.py").run()
    at.radio(key=state.widget_key("synth", "method")).set_value("selfinstruct").run()
    button(at, "Start").click().run()
    assert not at.exception and job_recorder.calls
    run, stage, argv = job_recorder.calls[0]
    args = build_parser().parse_args(argv)
    assert stage == "self-instruct" and args.backend == "openai"
    assert args.base_url == server.url
