"""Code capture for functions defined in an interactive session: a notebook cell, IPython, `python -c`,
a program on stdin, `exec` of compiled source.

Such a function has no module file to ship. Its source is found where the session keeps it
(`linecache`, where IPython and `compile` + `linecache` put cells; `sys.orig_argv` for `-c`; the file
on stdin) and checked against the function's own bytecode, so a stale or guessed text is never
shipped. What it reads from the session's globals is resolved against the live values, transitively:
functions and classes defined in the session travel as their definitions, modules and names imported
from modules as import statements, constants of plain literal types as literals, closures over such
constants as a small factory. All of it becomes one generated module, `satchel_session_<hash>`, named
by its own text: the same cells give the same bytes. Anything else (an open file, a connection, a
model object) is one CodeCaptureError naming each such global and what to do about it.
"""

from __future__ import annotations
import __future__

import ast
import hashlib
import inspect
import linecache
import math
import os
import pickle
import stat
import symtable
import sys
import textwrap
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from satchel.core.errors import CodeCaptureError
from satchel.packager.code import _statement

MODULE_PREFIX = "satchel_session_"
_FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag
_ANNOTATIONS = __future__.annotations.compiler_flag


def defined_in_session(func: Any) -> bool:
    """Whether `func` comes from an interactive session rather than from a module file."""
    module = sys.modules.get(getattr(func, "__module__", None) or "")
    file = getattr(module, "__file__", None) if module else None
    if not file or not str(file).endswith(".py"):
        return True
    code = getattr(func, "__code__", None)
    if func.__module__ != "__main__" or code is None or code.co_filename == file:
        return False
    # a script that exec()s compiled source: the function's file is not the script
    entry = linecache.cache.get(code.co_filename)
    return code.co_filename.startswith("<") or (entry is not None and entry[1] is None)


def session_module(func: Any, names: Iterable[str] = ()) -> tuple[str, str]:
    """The generated module (its name and text) defining `func` and what it uses from the session;
    `names` are further globals of the session the worker needs (classes that pickles refer to)."""
    if not isinstance(func, types.FunctionType):
        raise CodeCaptureError(
            f"{func!r} is not a Python function defined in a module or a session; define it with def"
        )
    session = _Session(func.__globals__, func.__module__)
    top = func.__qualname__.split(".")[0]
    session.define_root(top, func)
    for name in sorted(set(names) - {top}):
        session.need(name, "a bound value")
    session.resolve()
    text = session.render()
    module = MODULE_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16]
    return module, text


# -- sources --------------------------------------------------------------------------------------------


def _argv_program() -> str | None:
    """The program of `python -c PROGRAM` (options before it may be grouped: `-Bc`, `-X dev`)."""
    argv = list(getattr(sys, "orig_argv", []))[1:]
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            return None
        for j, char in enumerate(arg[1:], start=1):
            if char == "c":
                rest = arg[j + 1 :]
                return rest if rest else (argv[i + 1] if i + 1 < len(argv) else None)
            if char == "m":
                return None
            if char in "WX":  # their value follows: the rest of this argument or the next one
                if j == len(arg) - 1:
                    i += 1
                break
        i += 1
    return None


def _stdin_program() -> str | None:
    """The program Python read from stdin, when stdin is a regular file (`python - < job.py`)."""
    try:
        if not stat.S_ISREG(os.fstat(0).st_mode):
            return None
        size = os.fstat(0).st_size
        return os.pread(0, size, 0).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _text_of(filename: str) -> tuple[str | None, bool]:
    """The text of a session's source, and whether the session kept it (else it is only a candidate:
    `-c` and stdin programs also compile as `<string>` and `<stdin>`, as exec of a string does)."""
    lines = linecache.getlines(filename)
    if lines:
        return "".join(lines), True
    if filename == "<string>":
        return _argv_program(), False
    if filename == "<stdin>":
        return _stdin_program(), False
    return None, False


def _no_source(what: str, filename: str) -> CodeCaptureError:
    if filename == "<stdin>":
        try:
            terminal = os.isatty(0)
        except OSError:
            terminal = False
        how = (
            "it was typed into the Python REPL, which keeps no source"
            if terminal
            else "it was read from a pipe on stdin, which is gone"
        )
        fix = "save the code to a .py file and run or import it, or define it in a notebook cell (IPython)"
    elif filename == "<string>":
        how = "it was defined by exec() of a string, which keeps no source"
        fix = (
            "compile the source with a file name and put its text in linecache "
            "(linecache.cache[name] = (len(src), None, src.splitlines(True), name)), "
            "or define it in a .py file or a notebook cell"
        )
    else:
        how = f"its source {filename!r} cannot be read"
        fix = "define it in a .py file or a notebook cell"
    return CodeCaptureError(f"cannot capture {what}: {how}; {fix}")


@dataclass
class _Source:
    filename: str
    text: str
    tree: ast.Module
    code: types.CodeType | None  # compiled with the future flags of the code looked for in it
    kept: bool = True  # kept by the session (linecache), not a candidate (the program of -c, stdin)


class _Sources:
    """Session sources by file name, each parsed and compiled once per capture."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], _Source | None] = {}

    def get(self, filename: str, flags: int) -> _Source | None:
        key = (filename, flags)
        if key not in self._cache:
            text, kept = _text_of(filename)
            source = None
            if text is not None:
                try:
                    tree = ast.parse(text, filename)
                    code = compile(
                        text, filename, "exec", flags | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
                    )
                except SyntaxError:
                    tree, code = None, None
                source = _Source(filename, text, tree, code, kept) if tree is not None else None
            self._cache[key] = source
        return self._cache[key]

    def locate(self, code: types.CodeType, what: str) -> _Source:
        """The source that compiles to `code` (checked instruction for instruction); else an error."""
        source = self.get(code.co_filename, code.co_flags & _FUTURE_FLAGS)
        found = source is not None and source.code is not None and _contains(source.code, code)
        if source is None or not (found or source.kept):
            raise _no_source(what, code.co_filename)
        if not found:
            raise CodeCaptureError(
                f"cannot capture {what}: the source in {code.co_filename!r} is not the code that defined "
                "it (it changed since); run its definition again"
            )
        return source


def _contains(outer: types.CodeType, code: types.CodeType) -> bool:
    stack = [outer]
    while stack:
        current = stack.pop()
        if (
            current.co_name == code.co_name
            and current.co_firstlineno == code.co_firstlineno
            and current.co_code == code.co_code
        ):
            return True
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return False


def _first_line(node: ast.stmt) -> int:
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])


def _top_statement(tree: ast.Module, line: int) -> ast.stmt | None:
    for node in tree.body:
        if _first_line(node) <= line <= (node.end_lineno or node.lineno):
            return node
    return None


def _segment(source: _Source, node: ast.stmt) -> str:
    """A top-level statement's text as written (comments kept), or unparsed when it shares a line."""
    first, last = _first_line(node), node.end_lineno or node.lineno
    shared = any(
        other is not node and _first_line(other) <= last and (other.end_lineno or other.lineno) >= first
        for other in source.tree.body
    )
    if shared or node.col_offset:
        return ast.unparse(node) + "\n"
    lines = source.text.splitlines(keepends=True)[first - 1 : last]
    return "".join(lines).rstrip() + "\n"


# -- literals -------------------------------------------------------------------------------------------


def _literal(value: Any, depth: int = 0) -> str | None:
    """Python source that evaluates to `value` when it is made of plain literals only; else None."""
    if depth > 50:
        return None
    kind = type(value)
    if value is None or kind in (bool, int, str, bytes):
        return repr(value)
    if kind is float:
        return repr(value) if math.isfinite(value) else f'float("{value}")'
    if kind is complex:
        return repr(value) if math.isfinite(value.real) and math.isfinite(value.imag) else None
    if kind in (tuple, list, set, frozenset):
        items = [_literal(v, depth + 1) for v in value]
        if any(item is None for item in items):
            return None
        if kind is tuple:
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if kind is list:
            return "[" + ", ".join(items) + "]"
        body = "{" + ", ".join(sorted(items)) + "}"  # sorted: a set's order varies with string hashing
        if kind is set:
            return body if items else "set()"
        return f"frozenset({body})" if items else "frozenset()"
    if kind is dict:
        pairs = [(_literal(k, depth + 1), _literal(v, depth + 1)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return None


# -- the session's globals ------------------------------------------------------------------------------


@dataclass
class _Definition:
    name: str
    text: str
    now: set[str]  # names it reads when the module runs (decorators, bases, defaults, class bodies)


@dataclass
class _Refusal:
    name: str
    value: Any
    reader: str
    reason: str = ""


@dataclass
class _Session:
    namespace: dict[str, Any]
    module: str  # the session's module name (`__main__` in a notebook)
    sources: _Sources = field(default_factory=_Sources)
    definitions: dict[str, _Definition] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # definitions, as discovered
    imports: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # another global name -> the definition's
    refused: list[_Refusal] = field(default_factory=list)
    pending: list[tuple[str, str]] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    future_annotations: bool = False
    root: str = ""

    # -- what to capture ---------------------------------------------------------------------------

    def define_root(self, name: str, func: Any) -> None:
        self.root = name
        self.done.add(name)
        self._define_function(name, func, f"function {func.__qualname__!r}")

    def need(self, name: str, reader: str) -> None:
        if name not in self.done:
            self.done.add(name)
            self.pending.append((name, reader))

    def resolve(self) -> None:
        while self.pending:
            name, reader = self.pending.pop(0)
            self._resolve(name, reader)
        if self.refused:
            raise self._refusal_error()

    def _resolve(self, name: str, reader: str) -> None:
        if name not in self.namespace or name in self.definitions:
            return  # a builtin, or a name nothing defines yet: it fails in the worker as it would here
        value = self.namespace[name]
        if isinstance(value, types.ModuleType):
            self._import_module(name, value, reader)
            return
        literal = _literal(value)
        if literal is not None:
            self.constants[name] = f"{name} = {literal}\n"
            return
        if _is_satchel(value, "Environment"):  # what `@satchel.function(environment=...)` reads
            self.imports.setdefault("satchel", "import satchel\n")
            self.constants[name] = f"{name} = satchel.Environment()  # the bundle holds the environment\n"
            return
        target = getattr(value, "func", None) if _is_satchel(value, "Function") else value
        if self._imported(name, value, target):
            return
        if isinstance(target, type) and target.__module__ == self.module:
            self._define_class(name, target, reader)
            return
        try:
            inner = inspect.unwrap(target) if callable(target) else target
        except ValueError:  # a cycle of __wrapped__
            inner = target
        if isinstance(inner, types.FunctionType) and inner.__globals__ is self.namespace:
            self._define_function(name, inner, f"{name!r} (read by {reader})")
            return
        self.refused.append(_Refusal(name, value, reader))

    def _imported(self, name: str, value: Any, target: Any) -> bool:
        """`from module import name` for an object another module (not the session) holds; from the
        shortest of its module's packages that has it (`sklearn.linear_model`, not its private
        `sklearn.linear_model._logistic`)."""
        module_name = getattr(target, "__module__", None)
        if not isinstance(module_name, str) or module_name == self.module:
            return False
        attrs = [getattr(target, "__qualname__", None), getattr(target, "__name__", None), name]
        attrs = [a for a in attrs if isinstance(a, str) and a.isidentifier()]
        parts = module_name.split(".")
        for prefix in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            module = sys.modules.get(prefix)
            attr = next((a for a in attrs if getattr(module, a, None) is value), None)
            if module is None or attr is None:
                continue
            if prefix == "builtins":
                if attr != name:
                    self.constants[name] = f"{name} = {attr}\n"
            else:
                alias = "" if attr == name else f" as {name}"
                self.imports[name] = f"from {prefix} import {attr}{alias}\n"
            return True
        return False

    def _import_module(self, name: str, module: types.ModuleType, reader: str) -> None:
        full = module.__name__
        if sys.modules.get(full) is not module or full == self.module:
            self.refused.append(
                _Refusal(
                    name, module, reader, "a module no import statement gives; import it in the function"
                )
            )
            return
        parent, _, last = full.rpartition(".")
        if full == name:
            line = f"import {name}\n"
        elif parent and last == name:
            line = f"from {parent} import {name}\n"
        else:
            line = f"import {full} as {name}\n"
        self.imports[name] = line

    # -- definitions -------------------------------------------------------------------------------

    def _add(
        self, name: str, text: str, statement: ast.stmt, filename: str, skip: Iterable[str] = ()
    ) -> None:
        if name in self.definitions:
            return
        self.done.add(name)
        st = _statement(statement, filename)
        reads = st.reads - set(skip)
        now = _immediate_reads(statement, filename) - set(skip)
        self.definitions[name] = _Definition(name, text, now)
        self.order.append(name)
        for read in sorted(reads - {name}):
            self.need(read, repr(name))

    def _note_flags(self, code: types.CodeType) -> None:
        if code.co_flags & _ANNOTATIONS:
            self.future_annotations = True

    def _define_function(self, name: str, func: types.FunctionType, what: str) -> None:
        code = func.__code__
        if "<locals>" in func.__qualname__:
            self._define_closure(name, func, what)
            return
        self._note_flags(code)
        source = self.sources.locate(code, what)
        node = _top_statement(source.tree, code.co_firstlineno)
        own = func.__name__
        if func.__name__ == "<lambda>":
            if not (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Lambda)
            ):
                raise CodeCaptureError(
                    f"cannot capture {what}: a lambda is captured only as `name = lambda ...` on its own; "
                    "define it with def"
                )
            own = node.targets[0].id
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name != own:
            raise CodeCaptureError(f"cannot capture {what}: it is not defined by a def at the top level")
        self._alias(name, own, func, what)
        self._add(own, _segment(source, node), node, source.filename)

    def _define_closure(self, name: str, func: types.FunctionType, what: str) -> None:
        """A function made inside another one, over constants: a factory that makes it again."""
        code = func.__code__
        self._note_flags(code)
        source = self.sources.locate(code, what)
        node = next(
            (
                n
                for n in ast.walk(source.tree)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                and n.name == code.co_name
                and _first_line(n) == code.co_firstlineno
            ),
            None,
        )
        if node is None:
            raise CodeCaptureError(
                f"cannot capture {what}: a lambda made inside a function; define it with def"
            )
        cells = []
        for var, cell in zip(code.co_freevars, func.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:
                value = None
            literal = _literal(value)
            if literal is None:
                raise CodeCaptureError(
                    f"cannot capture {what}: it closes over {var!r} ({_type_name(value)}), which is not a "
                    "constant of a literal type; define it at the top level of a cell, or pass the value in"
                )
            cells.append(f"    {var} = {literal}\n")
        factory = f"_satchel_make_{name}"
        text = (
            f"def {factory}():\n"
            + "".join(cells)
            + textwrap.indent(ast.unparse(node), "    ")
            + f"\n    return {node.name}\n\n\n{name} = {factory}()\n"
        )
        self._add(name, text, node, source.filename, skip=code.co_freevars)

    def _define_class(self, name: str, cls: type, reader: str) -> None:
        what = f"class {cls.__qualname__!r} (read by {reader})"
        source, node = self._class_statement(cls, what)
        self._alias(name, cls.__name__, cls, what)
        self._add(cls.__name__, _segment(source, node), node, source.filename)

    def _class_statement(self, cls: type, what: str) -> tuple[_Source, ast.ClassDef]:
        """Where `cls` is defined: found through its methods' code, else its only definition."""
        for code in _method_codes(cls):
            self._note_flags(code)
            try:
                source = self.sources.locate(code, what)
            except CodeCaptureError:
                continue
            node = _top_statement(source.tree, code.co_firstlineno)
            if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
                return source, node
        history = self._history()
        ordered = [(s, n) for s in history for n in s.tree.body if _is_class_def(n, cls.__name__)]
        if ordered:  # IPython's cells, as they ran: the last definition is the live one
            return ordered[-1]
        found: dict[str, tuple[_Source, ast.ClassDef]] = {}
        for source in self._kept_sources():
            for node in source.tree.body:
                if _is_class_def(node, cls.__name__):
                    found[ast.unparse(node)] = (source, node)
        if len(found) == 1:
            return next(iter(found.values()))
        if found:
            raise CodeCaptureError(
                f"cannot capture {what}: it is defined differently in several places; "
                "give it a method or define it once"
            )
        raise CodeCaptureError(f"cannot capture {what}: its definition is in no source the session keeps")

    def _history(self) -> list[_Source]:
        """IPython's cells in the order they ran (`_ih`), when the session is IPython's."""
        history = self.namespace.get("_ih")
        sources = []
        for i, text in enumerate(history if isinstance(history, list) else []):
            try:
                sources.append(_Source(f"<cell {i}>", text, ast.parse(text), None))
            except (SyntaxError, TypeError, ValueError):
                continue
        return sources

    def _kept_sources(self) -> list[_Source]:
        """Every source the session keeps (registered in linecache), and the program of -c or stdin."""
        names = [n for n, entry in sorted(linecache.cache.items()) if len(entry) == 4 and entry[1] is None]
        sources = [self.sources.get(filename, 0) for filename in [*names, "<string>", "<stdin>"]]
        return [source for source in sources if source is not None]

    def _alias(self, name: str, own: str, value: Any, what: str) -> None:
        """A definition binds its own name; a global that is another name for it becomes `name = own`."""
        if name == own:
            return
        current = self.namespace.get(own)
        if current is not value and getattr(current, "func", None) is not value:
            raise CodeCaptureError(
                f"cannot capture {what}: it is {own!r} under another name, and {own!r} now names something "
                f"else; define it again as {name!r}"
            )
        self.aliases[name] = own

    # -- errors and text ---------------------------------------------------------------------------

    def _refusal_error(self) -> CodeCaptureError:
        lines = [f"cannot package {self.root!r}: it uses globals of the session that cannot travel with it:"]
        for r in self.refused:
            kind = _type_name(r.value)
            if r.reason:
                lines.append(f"  {r.name} ({kind}, read by {r.reader}): {r.reason}")
            elif _picklable(r.value):
                lines.append(
                    f"  {r.name} ({kind}, read by {r.reader}): not a constant of a literal type; make it a "
                    f"parameter of {self.root!r} and bind it ({self.root}.bind({r.name}={r.name})), "
                    "or compute it inside the function"
                )
            else:
                lines.append(
                    f"  {r.name} ({kind}, read by {r.reader}): it cannot be pickled (an open file, a "
                    "connection, ...); create it inside the function, or in a module the function imports"
                )
        return CodeCaptureError("\n".join(lines))

    def render(self) -> str:
        parts = [f'"""{self.root}, and what it uses, captured by Satchel from an interactive session."""\n']
        if self.future_annotations:
            parts.append("from __future__ import annotations\n")
        if self.imports:
            parts.append("\n" + "".join(sorted(self.imports.values())))
        if self.constants:
            parts.append("\n" + "".join(self.constants[n] for n in sorted(self.constants)))
        for name in self._ordered():
            parts.append("\n\n" + self.definitions[name].text)
            others = sorted(other for other, own in self.aliases.items() if own == name)
            if others:
                parts.append("".join(f"{other} = {name}\n" for other in others))
        return "".join(parts)

    def _ordered(self) -> list[str]:
        """Definitions, each after those it reads as the module runs (discovery order otherwise)."""
        placed: list[str] = []
        remaining = list(self.order)
        now = {n: {self.aliases.get(r, r) for r in d.now} - {n} for n, d in self.definitions.items()}
        while remaining:
            ready = next(
                (n for n in remaining if not now[n] & set(remaining)),
                remaining[0],  # a cycle: no order runs it, the discovery order stays
            )
            placed.append(ready)
            remaining.remove(ready)
        return placed


def _immediate_reads(node: ast.stmt, filename: str) -> set[str]:
    table = symtable.symtable(ast.unparse(node), filename, "exec")
    reads = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    stack = [c for c in table.get_children() if c.get_type() == "class"]
    while stack:
        child = stack.pop()
        stack.extend(c for c in child.get_children() if c.get_type() == "class")
        reads.update(s.get_name() for s in child.get_symbols() if s.is_global() or s.is_referenced())
    return reads


def _is_class_def(node: ast.stmt, name: str) -> bool:
    return isinstance(node, ast.ClassDef) and node.name == name


def _method_codes(cls: type) -> list[types.CodeType]:
    codes = []
    prefix = cls.__qualname__ + "."
    for value in vars(cls).values():
        for func in (
            getattr(value, "__func__", value),
            getattr(value, "fget", None),
            getattr(value, "fset", None),
        ):
            code = getattr(func, "__code__", None)
            if isinstance(code, types.CodeType) and getattr(func, "__qualname__", "").startswith(prefix):
                if getattr(code, "co_qualname", prefix).startswith(prefix):
                    codes.append(code)
    return codes


def _is_satchel(value: Any, name: str) -> bool:
    """Whether `value` is a satchel.Function or satchel.Environment (or the worker's stand-in)."""
    kind = type(value)
    return kind.__name__ == name and kind.__module__.startswith("satchel.")


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value, protocol=5)
    except Exception:
        return False
    return True


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
