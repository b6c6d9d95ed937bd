"""Offline checks of ARM JSON templates: an expression reader and the checks built on it.

ARM evaluates a JSON string as an expression when it starts with ``[`` and ends
with ``]`` (``[[`` escapes a literal ``[``). The grammar, from
learn.microsoft.com/azure/azure-resource-manager/templates/template-expressions::

    expression := primary ( "." NAME | "[" expression "]" )*
    primary    := STRING | NUMBER | NAME [ "." NAME ] "(" [ expression ( "," expression )* ] ")"
    STRING     := "'" ( any character but "'" | "''" )* "'"

Checks (each returns a list of problems; empty means fine):

- ``check_shape``: the template's top-level keys, parameter and output definitions;
- ``check_expressions``: every expression parses, calls known functions, and names
  only declared ``parameters('...')`` and ``variables('...')``; a nested deployment
  with ``expressionEvaluationOptions.scope: inner`` is checked against its own
  declarations, one with outer scope against its parent's;
- ``check_resources``: every resource has ``type`` and an explicit ``apiVersion``;
- ``check_depends_on``: every ``dependsOn`` entry names a resource (or copy loop)
  of the same template.

Child ``resources`` arrays inside a resource are reported, not followed: templates
here stay flat, with full types and ``a/b`` names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Call",
    "ExpressionError",
    "Index",
    "Member",
    "Num",
    "Str",
    "check_depends_on",
    "check_expressions",
    "check_resources",
    "check_shape",
    "expression_of",
    "iter_resources",
    "parse_expression",
    "walk",
]

API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
RESOURCE_TYPE = re.compile(r"^[A-Za-z0-9]+(\.[A-Za-z0-9]+)+(/[A-Za-z0-9]+)+$")
DEPLOYMENTS = "microsoft.resources/deployments"

# Template functions, from learn.microsoft.com/azure/azure-resource-manager/templates/
# template-functions (array, CIDR, comparison, date, deployment, lambda, logical,
# numeric, object, resource, scope and string functions). ``list*`` is a family.
_FUNCTION_GROUPS = (
    "array concat contains createArray empty first filter flatten indexFromEnd indexOf",
    "intersection items join last lastIndexOf length map mapValues max min objectKeys range",
    "reduce skip sort take toObject tryGet tryIndexFromEnd union",
    "parseCidr cidrSubnet cidrHost",
    "coalesce equals greater greaterOrEquals less lessOrEquals",
    "dateTimeAdd dateTimeFromEpoch dateTimeToEpoch utcNow",
    "deployer deployment environment parameters variables",
    "lambda lambdaVariables",
    "and bool false if not or true",
    "add copyIndex div float int mod mul sub",
    "createObject json null shallowMerge",
    "extensionResourceId managementGroupResourceId pickZones providers reference references",
    "resourceId subscriptionResourceId tenantResourceId",
    "managementGroup resourceGroup subscription tenant",
    "base64 base64ToJson base64ToString dataUri dataUriToString endsWith format guid newGuid",
    "padLeft replace split startsWith string substring toLower toUpper trim uniqueString uri",
    "uriComponent uriComponentToString",
)
KNOWN_FUNCTIONS = frozenset(name.lower() for group in _FUNCTION_GROUPS for name in group.split())

TOP_LEVEL_KEYS = frozenset(
    {
        "$schema",
        "contentVersion",
        "apiProfile",
        "definitions",
        "functions",
        "languageVersion",
        "metadata",
        "outputs",
        "parameters",
        "resources",
        "variables",
    }
)
PARAMETER_TYPES = frozenset(
    {"string", "securestring", "int", "bool", "object", "secureobject", "array"}
)
TEMPLATE_SCHEMAS = (
    "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
    "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#",
)
CONTENT_VERSION = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


# --- expressions ------------------------------------------------------------------------------


class ExpressionError(ValueError):
    """An expression that does not parse."""


@dataclass(frozen=True)
class Str:
    """A string literal."""

    value: str


@dataclass(frozen=True)
class Num:
    """An integer literal."""

    value: int


@dataclass(frozen=True)
class Call:
    """A function call; ``name`` is lower-case (ARM function names ignore case)."""

    name: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Member:
    """``target.name``."""

    target: Any
    name: str


@dataclass(frozen=True)
class Index:
    """``target[index]``."""

    target: Any
    index: Any


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+)
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<punct>[().,\[\]])
    """,
    re.VERBOSE,
)


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ExpressionError(f"unexpected {text[pos]!r} at {pos} in {text!r}")
        kind = m.lastgroup or ""
        if kind != "space":
            tokens.append((kind, m.group(), pos))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self, value: str | None = None) -> bool:
        if self.i >= len(self.tokens):
            return False
        return value is None or self.tokens[self.i][1] == value

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        if self.i >= len(self.tokens):
            raise ExpressionError(f"unexpected end of {self.text!r}")
        tkind, tvalue, pos = self.tokens[self.i]
        if (value is not None and tvalue != value) or (kind is not None and tkind != kind):
            wanted = value or kind
            raise ExpressionError(f"expected {wanted!r}, got {tvalue!r} at {pos} in {self.text!r}")
        self.i += 1
        return tvalue

    def expression(self) -> Any:
        node = self.primary()
        while True:
            if self.peek("."):
                self.take(".")
                node = Member(node, self.take(kind="name"))
            elif self.peek("["):
                self.take("[")
                node = Index(node, self.expression())
                self.take("]")
            else:
                return node

    def primary(self) -> Any:
        if self.i >= len(self.tokens):
            raise ExpressionError(f"unexpected end of {self.text!r}")
        kind, value, pos = self.tokens[self.i]
        if kind == "string":
            self.i += 1
            return Str(value[1:-1].replace("''", "'"))
        if kind == "number":
            self.i += 1
            return Num(int(value))
        if kind != "name":
            raise ExpressionError(f"unexpected {value!r} at {pos} in {self.text!r}")
        name = self.take()
        if self.peek("."):  # a user-defined function: namespace.member(...)
            self.take(".")
            name = f"{name}.{self.take(kind='name')}"
        if not self.peek("("):
            raise ExpressionError(f"{name!r} at {pos} is not a function call in {self.text!r}")
        self.take("(")
        args = []
        if not self.peek(")"):
            args.append(self.expression())
            while self.peek(","):
                self.take(",")
                args.append(self.expression())
        self.take(")")
        return Call(name.lower(), tuple(args))


def parse_expression(text: str) -> Any:
    """The syntax tree of an expression given without its brackets. Raises ExpressionError."""
    parser = _Parser(text)
    node = parser.expression()
    if parser.i != len(parser.tokens):
        _, value, pos = parser.tokens[parser.i]
        raise ExpressionError(f"unexpected {value!r} at {pos} in {text!r}")
    return node


def expression_of(value: str) -> Any | None:
    """The syntax tree of a template string, or None when it is a literal."""
    if len(value) >= 2 and value.startswith("[") and value.endswith("]"):
        if value.startswith("[["):
            return None
        return parse_expression(value[1:-1])
    return None


def walk(node: Any) -> Iterator[Any]:
    """Every node of a syntax tree, parents first."""
    yield node
    if isinstance(node, Call):
        for arg in node.args:
            yield from walk(arg)
    elif isinstance(node, Member):
        yield from walk(node.target)
    elif isinstance(node, Index):
        yield from walk(node.target)
        yield from walk(node.index)


# --- template structure -----------------------------------------------------------------------


def _lower(value: Any) -> str:
    return value.lower() if isinstance(value, str) else ""


def _is_nested_deployment(resource: Any) -> bool:
    return (
        isinstance(resource, dict)
        and _lower(resource.get("type")) == DEPLOYMENTS
        and isinstance(resource.get("properties"), dict)
        and isinstance(resource["properties"].get("template"), dict)
    )


def _inner_scope(resource: dict[str, Any]) -> bool:
    options = resource["properties"].get("expressionEvaluationOptions") or {}
    return _lower(options.get("scope")) == "inner"


def iter_resources(template: dict[str, Any], path: str = "$") -> Iterator[tuple[str, dict]]:
    """(path, resource) for every resource, nested deployments' templates included."""
    for i, resource in enumerate(template.get("resources") or []):
        where = f"{path}.resources[{i}]"
        yield where, resource
        if _is_nested_deployment(resource):
            yield from iter_resources(resource["properties"]["template"], f"{where}.template")


def check_shape(template: Any) -> list[str]:
    """The top-level shape of a deployment template, its parameter and output definitions."""
    if not isinstance(template, dict):
        return ["$: a template is a JSON object"]
    problems = []
    if template.get("$schema") not in TEMPLATE_SCHEMAS:
        problems.append(
            f"$.$schema: {template.get('$schema')!r} is not a deployment template schema"
        )
    if not CONTENT_VERSION.match(str(template.get("contentVersion", ""))):
        problems.append("$.contentVersion: required, like 1.0.0.0")
    for key in template:
        if key not in TOP_LEVEL_KEYS:
            problems.append(f"$.{key}: not a template property")
    if not isinstance(template.get("resources"), list):
        problems.append("$.resources: required, a list")
    for name, definition in (template.get("parameters") or {}).items():
        problems += _check_parameter(f"$.parameters.{name}", definition)
    for name, output in (template.get("outputs") or {}).items():
        if not isinstance(output, dict) or _lower(output.get("type")) not in PARAMETER_TYPES:
            problems.append(f"$.outputs.{name}: needs a type")
        elif "value" not in output and "copy" not in output:
            problems.append(f"$.outputs.{name}: needs a value")
    return problems


def _check_parameter(where: str, definition: Any) -> list[str]:
    if not isinstance(definition, dict):
        return [f"{where}: a parameter definition is an object"]
    kind = _lower(definition.get("type"))
    if kind not in PARAMETER_TYPES:
        return [f"{where}.type: {definition.get('type')!r} is not a parameter type"]
    problems = []
    allowed = definition.get("allowedValues")
    if "defaultValue" in definition:
        default = definition["defaultValue"]
        is_expression = isinstance(default, str) and expression_of(default) is not None
        if not is_expression:
            problems += [f"{where}.defaultValue: {p}" for p in value_problems(definition, default)]
    if allowed is not None and not isinstance(allowed, list):
        problems.append(f"{where}.allowedValues: must be a list")
    return problems


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "securestring": (str,),
    "int": (int,),
    "bool": (bool,),
    "object": (dict,),
    "secureobject": (dict,),
    "array": (list,),
}


def value_problems(definition: dict[str, Any], value: Any) -> list[str]:
    """Why ``value`` does not fit the parameter ``definition`` (type, allowed values, bounds)."""
    kind = _lower(definition.get("type"))
    wanted = _PYTHON_TYPES.get(kind, ())
    if not isinstance(value, wanted) or (kind == "int" and isinstance(value, bool)):
        return [f"{value!r} is not of type {definition.get('type')}"]
    problems = []
    allowed = definition.get("allowedValues")
    if isinstance(allowed, list) and value not in allowed:
        problems.append(f"{value!r} is not one of {allowed}")
    if kind == "int":
        if "minValue" in definition and value < definition["minValue"]:
            problems.append(f"{value} is below minValue {definition['minValue']}")
        if "maxValue" in definition and value > definition["maxValue"]:
            problems.append(f"{value} is above maxValue {definition['maxValue']}")
    if kind in ("string", "securestring", "array"):
        if "minLength" in definition and len(value) < definition["minLength"]:
            problems.append(f"length {len(value)} is below minLength {definition['minLength']}")
        if "maxLength" in definition and len(value) > definition["maxLength"]:
            problems.append(f"length {len(value)} is above maxLength {definition['maxLength']}")
    return problems


def check_resources(template: dict[str, Any]) -> list[str]:
    """Every resource has a resource ``type`` and an explicit, dated ``apiVersion``."""
    problems = []
    for where, resource in iter_resources(template):
        if not isinstance(resource, dict):
            problems.append(f"{where}: a resource is an object")
            continue
        kind = resource.get("type")
        if not isinstance(kind, str) or not RESOURCE_TYPE.match(kind):
            problems.append(f"{where}.type: {kind!r} is not a resource type")
        version = resource.get("apiVersion")
        if not isinstance(version, str) or not API_VERSION.match(version):
            problems.append(f"{where}.apiVersion: {version!r} is not an explicit API version")
        if "resources" in resource:
            problems.append(f"{where}.resources: child resources are not supported, keep it flat")
    return problems


# --- expressions in scope ---------------------------------------------------------------------


@dataclass
class _Scope:
    parameters: set[str]
    variables: set[str]
    functions: set[str] = field(default_factory=set)


def _declarations(template: dict[str, Any]) -> _Scope:
    variables = {name.lower() for name in (template.get("variables") or {}) if name != "copy"}
    for loop in (template.get("variables") or {}).get("copy") or []:
        if isinstance(loop, dict) and isinstance(loop.get("name"), str):
            variables.add(loop["name"].lower())
    functions = set()
    for namespace in template.get("functions") or []:
        for member in (namespace.get("members") or {}) if isinstance(namespace, dict) else {}:
            functions.add(f"{namespace.get('namespace', '')}.{member}".lower())
    return _Scope(
        parameters={name.lower() for name in (template.get("parameters") or {})},
        variables=variables,
        functions=functions,
    )


def check_expressions(template: dict[str, Any]) -> list[str]:
    """Every expression parses, calls known functions and names declared parameters/variables."""
    problems: list[str] = []
    _check_template(template, "$", problems)
    return problems


def _check_template(template: dict[str, Any], path: str, problems: list[str]) -> None:
    scope = _declarations(template)
    for key, value in template.items():
        if key == "functions":
            _check_functions(value, f"{path}.functions", scope, problems)
        else:
            _check_value(value, f"{path}.{key}", scope, problems)


def _check_functions(namespaces: Any, path: str, outer: _Scope, problems: list[str]) -> None:
    # A user-defined function sees only its own parameters (no variables, no template parameters).
    for i, namespace in enumerate(namespaces if isinstance(namespaces, list) else []):
        for name, member in ((namespace or {}).get("members") or {}).items():
            own = {p.get("name", "").lower() for p in member.get("parameters") or []}
            scope = _Scope(parameters=own, variables=set(), functions=outer.functions)
            _check_value(member.get("output"), f"{path}[{i}].{name}.output", scope, problems)


def _check_value(value: Any, path: str, scope: _Scope, problems: list[str]) -> None:
    if _is_nested_deployment(value):
        _check_nested_deployment(value, path, scope, problems)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(item, f"{path}.{key}", scope, problems)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_value(item, f"{path}[{i}]", scope, problems)
    elif isinstance(value, str):
        _check_string(value, path, scope, problems)


def _check_nested_deployment(
    resource: dict[str, Any], path: str, scope: _Scope, problems: list[str]
) -> None:
    nested = resource["properties"]["template"]
    for key, item in resource.items():
        if key != "properties":
            _check_value(item, f"{path}.{key}", scope, problems)
    for key, item in resource["properties"].items():
        if key != "template":
            _check_value(item, f"{path}.properties.{key}", scope, problems)
    where = f"{path}.properties.template"
    if _inner_scope(resource):
        _check_template(nested, where, problems)
        return
    # Outer scope: the nested template's expressions are evaluated in the parent's scope,
    # so its own parameters and variables could never be used.
    for section in ("parameters", "variables"):
        if nested.get(section):
            problems.append(f"{where}.{section}: declared, but the scope is outer (use inner)")
    for key, item in nested.items():
        if key not in ("parameters", "variables"):
            _check_value(item, f"{where}.{key}", scope, problems)


def _check_string(value: str, path: str, scope: _Scope, problems: list[str]) -> None:
    try:
        tree = expression_of(value)
    except ExpressionError as exc:
        problems.append(f"{path}: {exc}")
        return
    if tree is None:
        return
    for node in walk(tree):
        if not isinstance(node, Call):
            continue
        name = node.name
        if "." in name:
            if name not in scope.functions:
                problems.append(f"{path}: user function {name}() is not declared")
        elif name not in KNOWN_FUNCTIONS and not name.startswith("list"):
            problems.append(f"{path}: {name}() is not a template function")
        elif name in ("parameters", "variables"):
            declared = scope.parameters if name == "parameters" else scope.variables
            if len(node.args) != 1 or not isinstance(node.args[0], Str):
                problems.append(f"{path}: {name}() takes one literal name")
            elif node.args[0].value.lower() not in declared:
                problems.append(f"{path}: {name}('{node.args[0].value}') is not declared")


# --- dependsOn --------------------------------------------------------------------------------


def _name_segments(name: Any) -> tuple[Any, ...]:
    """A resource name as its ``/``-separated segments, literal or expression nodes."""
    if not isinstance(name, str):
        return (name,)
    tree = expression_of(name)
    if tree is None:
        return tuple(Str(s.lower()) for s in name.split("/"))
    if isinstance(tree, Call) and tree.name == "format" and tree.args:
        fmt = tree.args[0]
        if isinstance(fmt, Str):
            segments = []
            for piece in fmt.value.split("/"):
                m = re.fullmatch(r"\{(\d+)\}", piece)
                if m and int(m.group(1)) + 1 < len(tree.args):
                    segments.append(_normal(tree.args[int(m.group(1)) + 1]))
                elif "{" not in piece:
                    segments.append(Str(piece.lower()))
                else:
                    return (tree,)
            return tuple(segments)
    return (tree,)


def _normal(node: Any) -> Any:
    return Str(node.value.lower()) if isinstance(node, Str) else node


def _resource_id_target(tree: Any) -> tuple[str, tuple[Any, ...]] | None:
    """(type, name segments) of a ``resourceId``-like call, else None."""
    if not isinstance(tree, Call) or tree.name not in (
        "resourceid",
        "subscriptionresourceid",
        "tenantresourceid",
    ):
        return None
    for i, arg in enumerate(tree.args):
        if isinstance(arg, Str) and RESOURCE_TYPE.match(arg.value):
            return arg.value.lower(), tuple(_normal(a) for a in tree.args[i + 1 :])
    return None


def check_depends_on(template: dict[str, Any], path: str = "$") -> list[str]:
    """Every dependsOn entry names a resource or copy loop of the same template."""
    problems = []
    resources = [r for r in template.get("resources") or [] if isinstance(r, dict)]
    by_id = {(_lower(r.get("type")), _name_segments(r.get("name"))) for r in resources}
    names = {r.get("name") for r in resources if isinstance(r.get("name"), str)}
    loops = {_lower((r.get("copy") or {}).get("name")) for r in resources if r.get("copy")}
    for i, resource in enumerate(resources):
        where = f"{path}.resources[{i}]"
        for j, entry in enumerate(resource.get("dependsOn") or []):
            if not isinstance(entry, str):
                problems.append(f"{where}.dependsOn[{j}]: must be a string")
                continue
            try:
                tree = expression_of(entry)
            except ExpressionError as exc:
                problems.append(f"{where}.dependsOn[{j}]: {exc}")
                continue
            target = _resource_id_target(tree)
            if target is not None:
                found = target in by_id
            elif tree is None:
                found = entry.lower() in loops or entry in names
            else:
                found = entry in names
            if not found:
                problems.append(
                    f"{where}.dependsOn[{j}]: {entry} is not a resource of this template"
                )
        if _is_nested_deployment(resource):
            problems += check_depends_on(resource["properties"]["template"], f"{where}.template")
    return problems
