"""The documentation held to the code (fast tier: no servers, files only).

* docs/configuration.md names every field of `runtime.settings.Settings`, with its environment variables and its
  default as the model has it, and no variable the settings do not read;
* the RBAC tables of docs/install.md are the roles deploy/base/rbac/*.yaml binds to each ServiceAccount;
* the metrics table of docs/operations.md is the set of metrics the code defines (prometheus_client and Temporal's
  metric meter);
* the layers of docs/architecture.md hold: every import between the product's packages follows its table, and no
  module of theirs reads the environment;
* every relative link of README.md and docs/*.md points to a file of the repository, and every #anchor to a heading.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo

from runtime.settings import DEFAULT_TEMPORAL_ADDRESS, DEFAULT_TEMPORAL_NAMESPACE, TEMPORAL_ENVIRONMENT, Settings

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PRODUCT = ("api", "runtime", "contract", "activities", "workflows", "worker", "bridge")
NONE = "(none)"


# --- Markdown ------------------------------------------------------------------------------------------------------

def without_code_blocks(text: str) -> str:
    """The text with every fenced code block's lines blanked (line numbers kept)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else line)
    return "\n".join(lines)


def cells(line: str) -> list[str]:
    """A table row's cells (an escaped `\\|` stays inside its cell)."""
    row = line.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row)]


def tables(text: str) -> Iterator[tuple[int, list[str], list[list[str]]]]:
    """Every table: (the line number of its header, its header's cells, its rows' cells)."""
    lines = without_code_blocks(text).splitlines()
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|") and i + 1 < len(lines) and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1]):
            start, header, rows = i, cells(lines[i]), []
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            yield start, header, rows
        else:
            i += 1


def tables_headed(text: str, *first: str) -> list[list[list[str]]]:
    """The rows of every table whose header starts with these cells."""
    return [rows for _, header, rows in tables(text) if [h.lower() for h in header[:len(first)]] == list(first)]


def code(cell: str) -> list[str]:
    """The inline-code spans of a cell, in order."""
    return re.findall(r"`([^`]*)`", cell)


def headings(text: str) -> list[tuple[int, str]]:
    return [(i, m.group(2).strip()) for i, line in enumerate(without_code_blocks(text).splitlines())
            if (m := re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line))]


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens, -1/-2... on
    repeats."""
    seen: dict[str, int] = {}
    result = set()
    for _, heading in headings(text):
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# --- docs/configuration.md -----------------------------------------------------------------------------------------

def env_names(name: str, field: FieldInfo) -> list[str]:
    """The environment variables a field is read from, as pydantic-settings reads them: its aliases, or the prefix
    and its name."""
    alias = field.validation_alias
    names = [c for c in alias.choices if isinstance(c, str)] if isinstance(alias, AliasChoices) else \
        [alias] if isinstance(alias, str) else []
    return [n.upper() for n in names] or [f"{Settings.model_config.get('env_prefix', '')}{name}".upper()]


def documented_default(field: FieldInfo) -> str:
    """The default as the table writes it: `value` in code, booleans in lower case, whole floats without `.0`,
    enumerations by value, "(none)" for an empty string, an empty secret or None."""
    value: Any = field.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def configuration_rows() -> dict[str, list[str]]:
    """Each variable named in the first cell of a `| variable | default |` table -> its row."""
    rows: dict[str, list[str]] = {}
    for table in tables_headed(read(DOCS / "configuration.md"), "variable", "default"):
        for row in table:
            for name in code(row[0]):
                assert name not in rows, f"docs/configuration.md lists {name} twice"
                rows[name] = row
    return rows


def test_every_setting_is_documented_with_its_variables_and_default():
    rows = configuration_rows()
    assert rows, "docs/configuration.md has no `| variable | default |` table"
    wrong = []
    for name, field in Settings.model_fields.items():
        names = env_names(name, field)
        row = rows.get(names[0])
        if row is None:
            wrong.append(f"{name}: no row for {names[0]}")
            continue
        if missing := [n for n in names if n not in code(row[0])]:
            wrong.append(f"{name}: the row of {names[0]} does not name {', '.join(missing)}")
        if row[1] != documented_default(field):
            wrong.append(f"{name}: default {row[1]!r} in the docs, {documented_default(field)!r} in the code")
    assert not wrong, "docs/configuration.md differs from runtime/settings.py:\n" + "\n".join(wrong)


def test_the_temporal_connection_is_documented():
    rows = configuration_rows()
    assert [n for n in TEMPORAL_ENVIRONMENT if n not in rows] == []
    assert rows["TEMPORAL_ADDRESS"][1] == f"`{DEFAULT_TEMPORAL_ADDRESS}`"
    assert rows["TEMPORAL_NAMESPACE"][1] == f"`{DEFAULT_TEMPORAL_NAMESPACE}`"


def test_the_configuration_page_names_no_variable_the_settings_do_not_read():
    prefix = Settings.model_config.get("env_prefix", "").upper()
    read_by_settings = {n for name, field in Settings.model_fields.items() for n in env_names(name, field)}
    # populate_by_name: a field with names of its own is read as prefix + field name too
    read_by_settings |= {f"{prefix}{name}".upper() for name in Settings.model_fields}
    read_by_settings |= set(TEMPORAL_ENVIRONMENT)
    named = set(re.findall(r"\b(?:VMSNAP|TEMPORAL|VSPHERE|OTEL|KUBECONFIG)[A-Z0-9_]*", read(DOCS / "configuration.md")))
    named = {n for n in named if not n.endswith("_")}  # `VMSNAP_` + a field name: a prefix, not a variable
    assert named - read_by_settings == set()


# --- RBAC: docs/install.md against deploy/base/rbac -----------------------------------------------------------------

ANY = "—"


def granted_by_manifests(paths: list[Path]) -> dict[str, set[tuple[str, str, str, str, str]]]:
    """ServiceAccount -> {(where, apiGroup, resource, name or ANY, verb)} from the roles these files bind to it."""
    objects = [o for path in paths for o in yaml.safe_load_all(read(path)) if o]
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o.get("rules", [])
             for o in objects if o["kind"] in ("ClusterRole", "Role")}
    granted: dict[str, set[tuple[str, str, str, str, str]]] = {}
    for binding in (o for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        cluster = binding["kind"] == "ClusterRoleBinding"
        where = "cluster" if cluster else binding["metadata"]["namespace"]
        ref = binding["roleRef"]
        rules = roles[(ref["kind"], None if ref["kind"] == "ClusterRole" else where, ref["name"])]
        for subject in binding.get("subjects", []):
            if subject["kind"] != "ServiceAccount":
                continue
            granted.setdefault(subject["name"], set()).update(
                (where, group, resource, name, verb)
                for rule in rules for group in rule.get("apiGroups", []) for resource in rule.get("resources", [])
                for name in rule.get("resourceNames") or [ANY] for verb in rule.get("verbs", []))
    return granted


def granted_by_docs() -> dict[str, set[tuple[str, str, str, str, str]]]:
    """ServiceAccount -> the same tuples, from each `### ServiceAccount `name`` section's first table of
    docs/install.md (columns: where, apiGroup, resource, names, verbs)."""
    text = read(DOCS / "install.md")
    sections = [(line, m.group(1)) for line, heading in headings(text)
                if (m := re.fullmatch(r"ServiceAccount `([\w.-]+)`", heading))]
    found = list(tables(text))
    granted: dict[str, set[tuple[str, str, str, str, str]]] = {}
    for line, account in sections:
        table = next(((header, rows) for start, header, rows in found if start > line), None)
        assert table is not None, f"docs/install.md: no table after ServiceAccount {account}"
        header, rows = table
        assert [h.lower() for h in header[:5]] == ["where", "apigroup", "resource", "names", "verbs"], header
        for row in rows:
            where = (code(row[0]) or [row[0]])[0]
            group = code(row[1])[0]
            group = "" if group == '""' else group
            names = code(row[3]) or [ANY]
            verbs = [v.strip() for v in row[4].split(",") if v.strip()]
            granted.setdefault(account, set()).update(
                (where, group, resource, name, verb) for resource in code(row[2]) for name in names for verb in verbs)
    return granted


def granted_by_component_table(title: str = "Schedules: `components/schedules`",
                                ) -> dict[str, set[tuple[str, str, str, str, str]]]:
    """The same, from the table after docs/install.md's heading of a component (`### Schedules:
    `components/schedules``; a first column names the ServiceAccount)."""
    text = read(DOCS / "install.md")
    (line,) = [line for line, heading in headings(text) if heading == title]
    header, rows = next((header, rows) for start, header, rows in tables(text) if start > line)
    assert [h.lower() for h in header] == ["serviceaccount", "where", "apigroup", "resource", "names", "verbs"]
    granted: dict[str, set[tuple[str, str, str, str, str]]] = {}
    for row in rows:
        group = code(row[2])[0]
        granted.setdefault(code(row[0])[0], set()).update(
            (row[1], "" if group == '""' else group, resource, name, verb.strip())
            for resource in code(row[3]) for name in code(row[4]) or [ANY] for verb in row[5].split(","))
    return granted


def assert_same_grants(docs: dict[str, set], manifests: dict[str, set], where: str) -> None:
    assert set(docs) == set(manifests), f"ServiceAccounts: docs/install.md vs {where}"
    for account in manifests:
        assert docs[account] - manifests[account] == set(), f"{account}: in docs/install.md, not granted by {where}"
        assert manifests[account] - docs[account] == set(), f"{account}: granted by {where}, not in docs/install.md"


def test_the_rbac_tables_are_the_manifests():
    deploy = REPO / "deploy"
    assert_same_grants(granted_by_docs(), granted_by_manifests(sorted((deploy / "base" / "rbac").glob("*.yaml"))),
                       "deploy/base/rbac")
    assert_same_grants(granted_by_component_table(),
                       granted_by_manifests([deploy / "components" / "schedules" / "rbac.yaml"]),
                       "deploy/components/schedules")
    assert_same_grants(granted_by_component_table("Group snapshots: `components/group-snapshots`"),
                       granted_by_manifests([deploy / "components" / "group-snapshots" / "rbac.yaml"]),
                       "deploy/components/group-snapshots")


# --- metrics: docs/operations.md against the code -------------------------------------------------------------------

PROMETHEUS_TYPES = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram", "Summary": "summary"}
# Temporal's metric meter (temporalio.common.MetricMeter) and OpenTelemetry's meter
METER_TYPES = {"create_counter": "counter", "create_gauge": "gauge", "create_gauge_float": "gauge",
               "create_histogram": "histogram", "create_histogram_float": "histogram",
               "create_histogram_timedelta": "histogram", "create_up_down_counter": "gauge",
               "create_observable_gauge": "gauge", "create_observable_counter": "counter"}


def process_of(module: Path) -> str:
    top = module.relative_to(REPO).parts[0]
    return {"bridge": "bridge", "runtime": "both"}.get(top, "worker")


def product_modules() -> Iterator[Path]:
    for package in PRODUCT:
        yield from sorted((REPO / package).rglob("*.py"))


def metric_names(call: ast.Call, tree: ast.Module, parents: dict[ast.AST, ast.AST]) -> list[str]:
    """The metric name a definition's first argument gives: a string, or a parameter of the function it is in,
    which every call of that function in the module passes as a string."""
    first = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "name"), None)
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return [first.value]
    assert isinstance(first, ast.Name), f"a metric named by {ast.unparse(call)}: not a string or a parameter"
    function = call
    while not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
        function = parents[function]  # type: ignore[assignment]
    position = [a.arg for a in function.args.args].index(first.id)
    names = [c.args[position].value for c in ast.walk(tree)
             if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id == function.name
             and len(c.args) > position and isinstance(c.args[position], ast.Constant)]
    assert names, f"no call of {function.name} names its metric with a string"
    return names


def metrics_in_code() -> set[tuple[str, str, str]]:
    """(name, type, process) of every metric the product's modules define."""
    found = set()
    for module in product_modules():
        tree = ast.parse(read(module))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        prometheus = {alias.asname or alias.name: alias.name for node in ast.walk(tree)
                      if isinstance(node, ast.ImportFrom) and node.module == "prometheus_client"
                      for alias in node.names}
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            func = call.func
            if isinstance(func, ast.Name) and prometheus.get(func.id) in PROMETHEUS_TYPES:
                kind = PROMETHEUS_TYPES[prometheus[func.id]]
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                    and func.value.id == "prometheus_client" and func.attr in PROMETHEUS_TYPES:
                kind = PROMETHEUS_TYPES[func.attr]
            elif isinstance(func, ast.Attribute) and func.attr in METER_TYPES:
                kind = METER_TYPES[func.attr]
            else:
                continue
            found |= {(name, kind, process_of(module)) for name in metric_names(call, tree, parents)}
    return found


def metrics_in_docs() -> set[tuple[str, str, str]]:
    found = set()
    for table in tables_headed(read(DOCS / "operations.md"), "metric", "type", "process"):
        for row in table:
            found.add((code(row[0])[0], row[1].strip(), row[2].strip()))
    return found


def test_the_metrics_table_is_the_metrics_the_code_defines():
    code_metrics, docs = metrics_in_code(), metrics_in_docs()
    assert {process for _, _, process in code_metrics} >= {"worker", "bridge"}, code_metrics  # the scan works
    assert docs - code_metrics == set(), "in docs/operations.md, not defined by the code (or another type/process)"
    assert code_metrics - docs == set(), "defined by the code, not in docs/operations.md's metrics table"


# --- layers: docs/architecture.md against the imports ---------------------------------------------------------------

def layers_in_docs() -> dict[str, set[str]]:
    """Package -> the product packages docs/architecture.md says it imports."""
    allowed: dict[str, set[str]] = {}
    for table in tables_headed(read(DOCS / "architecture.md"), "package", "owns", "imports"):
        for row in table:
            imports = {name.rstrip("/") for name in code(row[2])}
            for package in code(row[0]):
                allowed[package.rstrip("/")] = imports
    return allowed


def imports_of(package: str) -> dict[str, set[str]]:
    """Each product package this package's modules import -> the modules that do."""
    found: dict[str, set[str]] = {}
    for module in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(read(module))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top in PRODUCT and top != package:
                    found.setdefault(top, set()).add(str(module.relative_to(REPO)))
    return found


def test_the_layers_docs_architecture_states_hold():
    allowed = layers_in_docs()
    assert set(allowed) == set(PRODUCT), f"docs/architecture.md's layer table: {sorted(allowed)}"
    wrong = [f"{package} imports {other} ({', '.join(sorted(modules))})"
             for package in PRODUCT for other, modules in imports_of(package).items() if other not in allowed[package]]
    assert not wrong, "imports against docs/architecture.md's layers:\n" + "\n".join(wrong)


def test_only_the_settings_read_the_environment():
    readers = []
    for module in product_modules():
        for node in ast.walk(ast.parse(read(module))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb") \
                    or isinstance(node, ast.ImportFrom) and node.module == "os" \
                    and {a.name for a in node.names} & {"environ", "getenv", "environb"}:
                readers.append(f"{module.relative_to(REPO)}:{node.lineno}")
    assert readers == [], "read the environment (only runtime/settings.py may, through pydantic-settings)"


# --- links -----------------------------------------------------------------------------------------------------------

PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def links(page: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", without_code_blocks(read(page)))  # inline code is no link
    return LINK.findall(text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_a_file_and_a_heading_that_exist(page: Path):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not checked here
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(REPO):
            broken.append(f"{target}: outside the repository")
        elif not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(read(file)):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(REPO)}")
        elif anchor and file.suffix != ".md":
            broken.append(f"{target}: an anchor into a file that is not Markdown")
    assert not broken, f"{page.relative_to(REPO)}:\n" + "\n".join(broken)


def test_the_pages_link_to_each_other():
    """The link check sees links: every docs page is reached from the README."""
    reached = {(REPO / target.partition("#")[0]).resolve() for target in links(REPO / "README.md")}
    assert [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in reached] == []


def test_the_readme_gives_the_two_commands():
    """`.ci/run` runs "the README's test command"; the README gives it, and the dev command."""
    readme = read(REPO / "README.md")
    assert "`make test`" in readme and "`make dev`" in readme
