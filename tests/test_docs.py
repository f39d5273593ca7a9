"""The documentation names what the code serves: commands, routes, settings and rates.

Commands, REST routes and settings are renamed from time to time; a page that still names
the old ones misleads every reader. These checks read docs/*.md and README.md against the
command registry, the aiohttp router and the settings classes:

- every command is in docs/socket-protocol.md and every command route in docs/rest-api.md;
- a backticked name that looks like a command (`item.react`, `follow_request.approve` /
  `reject`, `item.*`) is one, unless it is a server event or a job type;
- a `METHOD /v1/...` route or a backticked `/v1/...` path is one the server routes, with the
  same path parameter names;
- the scope of a command in the route tables and in rest-api.md's route sections is the one
  it declares, and every `read:*` / `write:*` scope named is in the catalogue;
- every `HOTSPOT_*` variable is a field of Settings, Limits (`HOTSPOT_LIMIT_*`) or Rates
  (`HOTSPOT_RATE_*`), or one the test suite reads; a `HOTSPOT_RATE_*` default quoted next to
  its setting (`(default `20/10`)`, `=20/10`) is the configured default;
- docs/limits.md#rates has one row per rate with its setting, its default and the commands
  that declare it, and docs/configuration.md one row per other setting;
- backticked repository paths exist, and links between pages point at existing headings.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import jobs
from channels.events import server_events
from config import Limits, Rates, Settings
from handlers.commands import Command
from handlers.scopes import Scope
from server.app import command_registry, create_app

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]

# Recorded results of past benchmark runs keep the settings those runs used; current runs
# set HOTSPOT_RATE_* (bench/servers.py BENCH_OVERRIDES). Only these pages may show them.
RECORDED_BENCHMARK_SETTINGS = frozenset({
    "HOTSPOT_LIMIT_SIGNUPS_PER_IP", "HOTSPOT_LIMIT_MESSAGES_PER_WINDOW",
})

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
BACKTICKED = re.compile(r"`([^`\n]+)`")
# A command-like name at the start of a backticked span: `message.send {conversation_id}`.
DOTTED = re.compile(r"([a-z][a-z0-9_]*(?:\.(?:[a-z][a-z0-9_]*|\*))+)(?=$|[\s{(])")
# `follow_request.approve` / `reject`: shorthand for follow_request.reject.
SHORTHAND = re.compile(r"`([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+)`((?:\s+/\s+`[a-z][a-z0-9_]*`)+)")
METHODS = r"(?:GET|POST|PUT|PATCH|DELETE|HEAD)"
ROUTE_MENTION = re.compile(rf"\b({METHODS}(?:,\s*{METHODS})*)\s+`?(/v1/[^\s`|),;\[\]]*)")
PATH_MENTION = re.compile(r"`(/v1/[^\s`\[\]]*)`")
SETTING = re.compile(r"\bHOTSPOT_[A-Z0-9]+(?:_[A-Z0-9]+)*\b(?![_<*])")
# A rate's setting and the numbers quoted right after it: `HOTSPOT_RATE_SIGNUP` (default
# `20/3600`), HOTSPOT_RATE_MESSAGE_SEND=20/10.
RATE_SETTING = re.compile(r"HOTSPOT_RATE_([A-Z0-9_]+)\b")
RATE_NUMBERS = re.compile(r"=(\d+)/(\d+)|`(\d+)/(\d+)s?`")
SCOPE_LIKE = re.compile(r"`((?:read|write)(?::[a-z_]+)?|[a-z_]+:(?:read|write))`")
REPO_PATH = re.compile(r"`((?:config|server|handlers|channels|jobs|storage|workers|clients|tests|bench|docs)"
                       r"/[^`\s<>*]*)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def commands() -> dict[str, Command]:
    return {cmd.name: cmd for cmd in command_registry()}


@cache
def text(page: Path) -> str:
    return page.read_text()


def prose(page: Path) -> str:
    """The page without fenced code blocks (examples, where backticks mean nothing)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text(page))


def lines(page: Path, body: str | None = None) -> Iterator[tuple[str, str]]:
    for number, line in enumerate((text(page) if body is None else body).splitlines(), 1):
        yield f"{page.relative_to(ROOT)}:{number}", line


def job_types() -> set[str]:
    """The queue job types (`media.process`, ...): the *_JOB constants of jobs/."""
    found = set()
    for info in pkgutil.iter_modules(jobs.__path__):
        module = importlib.import_module(f"jobs.{info.name}")
        found |= {value for name, value in vars(module).items()
                  if name.endswith("_JOB") and isinstance(value, str)}
    return found


@cache
def routes() -> frozenset[tuple[str, str]]:
    """(method, path) of everything the API server routes, HTTP-only routes included."""
    app = create_app(Settings(env="dev", metrics_token="m" * 32))
    return frozenset((route.method, route.resource.canonical) for route in app.router.routes()
                     if route.resource is not None and route.method not in ("HEAD", "*"))


def path_matches(documented: str, routed: str) -> bool:
    """A documented path names a route: literal segments equal, parameters by the same name.

    A concrete value (`/v1/users/me`, `/v1/media/c957fb77-.../content`) may stand for a
    parameter; a `{parameter}` must be the route's own name for it.
    """
    doc_parts, route_parts = documented.rstrip("/").split("/"), routed.rstrip("/").split("/")
    if len(doc_parts) != len(route_parts):
        return False
    for doc, route in zip(doc_parts, route_parts, strict=True):
        if route.startswith("{"):
            if doc.startswith("{") and doc != route:
                return False
        elif doc != route:
            return False
    return True


def clean_path(path: str) -> str:
    return path.split("?", 1)[0].split("#", 1)[0].rstrip(".:")


def test_every_command_is_in_the_socket_protocol() -> None:
    page = text(DOCS / "socket-protocol.md")
    missing = [name for name in commands()
               if not re.search(rf"`{re.escape(name)}(?=[`\s{{(])", page)]
    assert not missing, "docs/socket-protocol.md does not name: " + ", ".join(missing)


def test_every_command_route_is_in_the_rest_api() -> None:
    page = text(DOCS / "rest-api.md")
    documented: set[tuple[str, str]] = set()
    for row in re.finditer(rf"^\|\s*({METHODS}(?:,\s*{METHODS})*)\s*\|\s*`([^`]+)`", page, re.M):
        documented |= {(m.strip(), clean_path(row.group(2))) for m in row.group(1).split(",")}
    for head in re.finditer(rf"^#+\s+({METHODS})\s+(/\S+)", page, re.M):
        documented.add((head.group(1), clean_path(head.group(2))))
    missing = [f"{cmd.method} {cmd.rest_path} ({cmd.name})" for cmd in commands().values()
               if cmd.rest_path is not None and (cmd.method, cmd.rest_path) not in documented]
    assert not missing, "docs/rest-api.md has no row for:\n" + "\n".join(missing)


def test_docs_name_only_existing_commands() -> None:
    names = set(commands())
    resources = {name.split(".")[0] for name in names}
    others = {event.name for event in server_events()} | job_types()
    found = []
    for page in PAGES:
        for where, line in lines(page, prose(page)):
            for span in BACKTICKED.finditer(line):
                match = DOTTED.match(span.group(1))
                if match is None:
                    continue
                name = match.group(1)
                # users.* is the retired prefix of account.* and user.*: still a command name.
                if name.split(".")[0] not in resources | {"users"} or name in names | others:
                    continue
                if name.endswith(".*") and any(n.startswith(name[:-1]) for n in names):
                    continue
                found.append(f"{where}: `{name}`")
            for short in SHORTHAND.finditer(line):
                stem = short.group(1).rsplit(".", 1)[0]
                for tail in re.findall(r"`([a-z0-9_]+)`", short.group(2)):
                    if f"{stem}.{tail}" not in names:
                        found.append(f"{where}: `{short.group(1)}` / `{tail}` (no {stem}.{tail})")
    assert not found, "no such command:\n" + "\n".join(found)


def test_docs_name_only_existing_routes() -> None:
    served = routes()
    found = []
    for page in PAGES:
        for where, line in lines(page):
            mentioned: list[tuple[set[str] | None, str]] = []
            for route in ROUTE_MENTION.finditer(line):
                verbs = {m.strip() for m in route.group(1).split(",")}
                mentioned.append((verbs, clean_path(route.group(2))))
            mentioned += [(None, clean_path(path)) for path in PATH_MENTION.findall(line)]
            for methods, path in mentioned:
                if not any(path_matches(path, routed) and (methods is None or method in methods)
                           for method, routed in served):
                    label = f"{'/'.join(sorted(methods))} {path}" if methods else path
                    if not any(path_matches(path, routed) for _, routed in served):
                        label += " (no such path)"
                    found.append(f"{where}: {label}")
    assert not found, "no such route:\n" + "\n".join(found)


def known_settings() -> set[str]:
    return ({f"HOTSPOT_{name.upper()}" for name in Settings.model_fields
             if name not in ("limits", "rates")}
            | {f"HOTSPOT_LIMIT_{name.upper()}" for name in Limits.model_fields}
            | {f"HOTSPOT_RATE_{name.upper()}" for name in Rates.model_fields})


def test_docs_name_only_existing_settings() -> None:
    known = known_settings()
    # Variables the test suite reads (tests/conftest.py), not the server.
    suite = (ROOT / "tests" / "conftest.py").read_text()
    found = []
    for page in PAGES:
        for where, line in lines(page):
            for name in SETTING.findall(line):
                if name in known or (name.startswith("HOTSPOT_TEST_") and f'"{name}"' in suite):
                    continue
                if page.name.startswith("benchmarks") and name in RECORDED_BENCHMARK_SETTINGS:
                    continue
                found.append(f"{where}: {name}")
    assert not found, "no such setting:\n" + "\n".join(found)


def test_configuration_lists_every_setting() -> None:
    page = text(DOCS / "configuration.md")
    names = {name for name in known_settings() if not name.startswith("HOTSPOT_RATE_")}
    missing = sorted(name for name in names if f"| `{name}` |" not in page)
    assert not missing, "docs/configuration.md has no row for: " + ", ".join(missing)


def rate_rows() -> dict[str, list[str]]:
    """The rows of the table in docs/limits.md#rates, by rate name."""
    section = text(DOCS / "limits.md").split("\n## Rates\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 5:
            rows[cells[0].strip("`")] = cells
    return rows


def test_the_rates_table_matches_the_rates() -> None:
    rows = rate_rows()
    declared: dict[str, set[str]] = defaultdict(set)
    for cmd in commands().values():
        for rate in cmd.rates:
            declared[rate.name].add(cmd.name)
    defaults = Rates()
    wrong = sorted(f"{name}: no row" for name in Rates.model_fields if name not in rows)
    for name, (_, _, numbers, setting, listed) in rows.items():
        if name not in Rates.model_fields:
            wrong.append(f"{name}: not a rate")
            continue
        spec = defaults.spec(name)
        if numbers != f"{spec.limit} / {spec.window_s} s":
            wrong.append(f"{name}: {numbers!r}, default is {spec.limit} / {spec.window_s} s")
        if setting != f"`HOTSPOT_RATE_{name.upper()}`":
            wrong.append(f"{name}: setting {setting}")
        if not declared[name]:
            continue  # charged by a use case; the row says for what
        count = re.fullmatch(r"(\d+) commands", listed)
        if count is not None:
            if int(count.group(1)) != len(declared[name]):
                wrong.append(f"{name}: {listed}, declared by {len(declared[name])}")
        elif set(re.findall(r"`([a-z][a-z0-9_.]*)`", listed)) != declared[name]:
            wrong.append(f"{name}: lists {listed}, declared by {sorted(declared[name])}")
    assert not wrong, "docs/limits.md#rates:\n" + "\n".join(wrong)


def test_scopes_match_the_declarations() -> None:
    cmds = commands()
    catalogue = {scope.value for scope in Scope}
    wrong = []
    for page in (DOCS / "rest-api.md", DOCS / "socket-protocol.md"):
        for where, line in lines(page):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            named = [name for cell in cells for name in re.findall(r"`([a-z][a-z0-9_.]*)`", cell)
                     if name in cmds]
            scopes = [cell for cell in cells if cell == "—" or SCOPE_LIKE.fullmatch(cell)
                      or cell in ("`account`", "`admin`")]
            if not line.startswith("|") or len(named) != 1 or len(scopes) != 1:
                continue
            declared = cmds[named[0]].scope
            if scopes[0].strip("`") != ("—" if declared is None else declared.value):
                wrong.append(f"{where}: {named[0]} {scopes[0]}, declared {declared}")
    sections = re.split(r"^(?=#{2,3} )", text(DOCS / "rest-api.md"), flags=re.M)
    for section in sections:
        head = re.match(r"### .*?`([a-z][a-z0-9_.]*)`\s*$", section, re.M)
        scope = re.search(r"^Scope `([^`]+)`", section, re.M)
        if head and scope and head.group(1) in cmds:
            declared = cmds[head.group(1)].scope
            if declared is None or scope.group(1) != declared.value:
                wrong.append(f"rest-api.md {head.group(1)}: Scope `{scope.group(1)}`, declared {declared}")
    for page in PAGES:
        for where, line in lines(page):
            wrong += [f"{where}: no scope {name}" for name in SCOPE_LIKE.findall(line)
                      if name not in catalogue]
    assert not wrong, "scopes:\n" + "\n".join(wrong)


def test_quoted_rate_defaults_are_the_defaults() -> None:
    defaults = Rates()
    wrong = []
    for page in PAGES:
        if page.name.startswith("benchmarks"):
            continue  # a benchmark sets its own numbers
        flat = text(page).replace("\n", " ")
        for setting in RATE_SETTING.finditer(flat):
            name = setting.group(1).lower()
            if name not in Rates.model_fields:
                continue  # test_docs_name_only_existing_settings reports it
            numbers = RATE_NUMBERS.search(flat, setting.end(), setting.end() + 60)
            if numbers is None or (numbers.group(1) is not None and numbers.start() != setting.end()):
                continue
            count, window = (numbers.group(1), numbers.group(2)) if numbers.group(1) else (
                numbers.group(3), numbers.group(4))
            spec = defaults.spec(name)
            if (int(count), int(window)) != (spec.limit, spec.window_s):
                wrong.append(f"{page.name}: {setting.group(0)} {count}/{window}, "
                             f"default {spec.limit}/{spec.window_s}")
    assert not wrong, "wrong defaults:\n" + "\n".join(wrong)


def slugs(page: Path) -> set[str]:
    """The anchors of a page's headings, as GitHub makes them."""
    seen: dict[str, int] = defaultdict(int)
    found = set()
    for heading in re.finditer(r"^#{1,6}\s+(.+?)\s*$", prose(page), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return found


def test_paths_and_links_exist() -> None:
    missing = []
    for page in PAGES:
        for where, line in lines(page, prose(page)):
            missing += [f"{where}: {path}" for path in REPO_PATH.findall(line)
                        if not (ROOT / path.rstrip("/")).exists()]
            for target in LINK.findall(line):
                if target.startswith(("http://", "https://", "mailto:")):
                    continue
                file, _, anchor = target.partition("#")
                linked = page.parent / file if file else page
                if not linked.exists():
                    missing.append(f"{where}: {target}")
                elif anchor and linked.suffix == ".md" and anchor not in slugs(linked):
                    missing.append(f"{where}: {target} (no such heading)")
    assert not missing, "no such file or heading:\n" + "\n".join(missing)
