"""Structure recovery: a flat imported graph (graph.Imported) back to readable .net source.

The steps, in order:

1. normalise the graph: identities and one-input concats vanish, a concat of a growing list
   (DenseNet's `torch.cat(features)`) becomes a chain of two-input concats, and a concat that
   appends a child module's output to its input moves into that child (`concat(id, ...)`);
2. each module instance with one input and one output (closed) is a candidate block; its
   layers, with its closed children as single items, become a term by series-parallel
   decomposition (a merge's branches start at the merge's immediate dominator);
3. the instances of one module class (or, without classes, of one structure) anti-unify:
   the numbers that differ become parameters (related to each other or to `in.c` where the
   relation is exact: `c * 4`, `k // 2`), the common value becomes a default; instances
   that differ exactly by a merge branch that is `id` in some of them get a conditional
   (`if s == 1 and in.c == c * 4 then id else ...`);
4. identical consecutive items become `[ ... ]*n`; containers of units of one class become
   one stage block (`b(c, s=s) + [b(c)]*(n - 1)`) when a stage has three units or more;
   runs of layers that end in a pool and share a structure become a `stage` block (VGG);
   calls whose numbers step evenly become `[b(a + d * i) for i in range(n)]`.

Containers (torch's Sequential, ModuleList, ModuleDict) are not blocks: their contents are
inlined, unless they are stages. Layer order is the source's execution order, which keeps the
generated model's parameters in the source's order (netdsl.weights.load_by_order).
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from dataclasses import dataclass

from ..errors import NetdslError
from .graph import Imported, Layer
from .reference import snake

CONTAINERS = {
    "torch.nn.modules.container.Sequential",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.container.ModuleDict",
}
MERGES = ("add", "concat", "mul", "mean")

# terms are tuples, so that equal structures compare and hash equal:
#   ("seq", items)                   items: a tuple of terms (empty: id)
#   ("op", op, args)                 args: ((key, value), ...), the catalogue's order
#   ("call", block, args)            args: ((param, value), ...), the block's parameters
#   ("merge", op, branches)          branches: seq terms
#   ("repeat", body, count)          body: a seq term
#   ("cond", condition, then, else)  then/else: seq terms (condition: text)
#   ("mod", path)                    a closed child module, before it is resolved
#   ("group", items)                 a parenthesised sequence (a conditional's branch)


@dataclass(frozen=True)
class Sym:
    """A number written as an expression of a block's parameters: `c * 4`, `in.c`."""

    text: str


@dataclass
class Block:
    name: str
    params: list[tuple[str, object]]  # (name, default or _REQUIRED), in order
    body: tuple  # a seq term whose numbers may be Syms


_REQUIRED = object()
_HOLE = ("#",)


class RecoveryError(Exception):
    """A graph recovery cannot write as a .net expression (a bug or an unsupported form)."""


def recover(imported: Imported) -> str:
    """The .net source text of `imported`, with blocks, repeats and stages recovered."""
    from ..fmt import format_text

    text = _Recovery(imported).text()
    return format_text(text, f"<import {imported.name}>")


# ---- 1. the graph --------------------------------------------------------------------------


def _normalise(imported: Imported) -> tuple[list[Layer], dict[str, str]]:
    """Layers without identities, with concat chains split and merges moved into modules."""
    alias: dict[str, str] = {}

    def real(v: str) -> str:
        while v in alias:
            v = alias[v]
        return v

    layers: list[Layer] = []
    concats: dict[tuple[str, ...], str] = {}  # the inputs of a concat -> its name
    readers: dict[str, set[str]] = {}
    for layer in imported.layers:
        for v in layer.inputs:
            readers.setdefault(v, set()).add(layer.op)
    pooled = {layer.name for layer in imported.layers if _pools_to_one(layer)}
    for layer in imported.layers:
        inputs = [real(v) for v in layer.inputs]
        if layer.op == "id" or (layer.op in ("concat", "add") and len(inputs) == 1):
            alias[layer.name] = inputs[0]
            continue
        if (
            layer.op == "flatten"
            and inputs[0] in pooled
            and readers.get(layer.name, set()) == {"fc"}
            and layer.name not in imported.outputs
        ):
            alias[layer.name] = inputs[0]  # `gap + fc`: fc reads a C x 1 x 1 as its features
            continue
        if layer.op == "concat":
            original = tuple(inputs)
            # cat([x, a, b]) after cat([x, a]) is concat(cat([x, a]), b): DenseNet's growth
            for cut in range(len(inputs) - 1, 1, -1):
                earlier = concats.get(tuple(inputs[:cut]))
                if earlier is not None:
                    inputs = [earlier, *inputs[cut:]]
                    break
            concats[original] = layer.name
        layers.append(
            Layer(layer.name, layer.op, dict(layer.args), inputs, layer.path, layer.source)
        )
    outputs = [real(v) for v in imported.outputs]
    _move_merges(layers, imported)
    return layers, {"__outputs__": ",".join(outputs), **alias}


def _pools_to_one(layer: Layer) -> bool:
    """A pool whose output is C x 1 x 1, which fc reads without a flatten."""
    if layer.op in ("gap", "gmp"):
        return True
    size = layer.args.get("size")
    return layer.op in ("adaptive_avgpool", "adaptive_maxpool") and size in (1, (1, 1))


def _move_merges(layers: list[Layer], imported: Imported) -> None:
    """A concat of a child module's input with that child's output joins the child.

    torchvision's DenseNet concatenates in the next layer (or the block's end) what a dense
    layer appended; written as a block, the layer is `concat(id, ...)`."""
    producer = {layer.name: layer for layer in layers}
    for layer in layers:
        if layer.op != "concat" or len(layer.inputs) != 2:
            continue
        first, last = layer.inputs
        made = producer.get(last)
        if made is None:
            continue
        common = 0
        while common < min(len(made.path), len(layer.path)) and (
            made.path[common] == layer.path[common]
        ):
            common += 1
        if len(made.path) <= common:
            continue
        child = made.path[: common + 1]
        inside = [x for x in layers if x.path[: len(child)] == child]
        entries = {v for x in inside for v in x.inputs if v not in {y.name for y in inside}}
        if entries == {first} and inside[-1].name == last:
            layer.path = child


def _channels(imported: Imported, layers: list[Layer]) -> dict[str, int]:
    """The channels (features, for flat tensors) of every value: what `in.c` reads."""
    chan = {name: shape[0] for name, shape in imported.inputs.items()}
    for layer in layers:
        c = [chan.get(v, 0) for v in layer.inputs] or [0]
        a = layer.args
        if layer.op in ("conv", "conv_transpose", "sepconv"):
            out = a["c"]
        elif layer.op in ("fc", "pointwise_fc", "embedding", "patch_embed"):
            out = a.get("n", a.get("d"))
        elif layer.op == "dwconv":
            out = c[0] * a.get("m", 1)
        elif layer.op == "concat":
            out = sum(c)
        elif layer.op == "chunk":
            out = c[0] // a["n"]
        elif layer.op == "channels":
            out = a["stop"] - a["start"]
        elif layer.op == "pixel_shuffle":
            out = c[0] // (a["r"] ** 2)
        elif layer.op == "pixel_unshuffle":
            out = c[0] * a["r"] ** 2
        else:
            out = c[0]
        chan[layer.name] = out
    return chan


# ---- 2-4. modules to blocks ------------------------------------------------------------------


@dataclass
class _Instance:
    path: tuple[str, ...]
    layers: list[Layer]
    entry: str
    exit: str


class _Recovery:
    def __init__(self, imported: Imported) -> None:
        if len(imported.inputs) != 1:
            raise RecoveryError("only models with one input can be imported")
        self.imported = imported
        self.layers, alias = _normalise(imported)
        outputs = [o for o in alias.pop("__outputs__").split(",") if o]
        if not self.layers:
            raise RecoveryError("the model computes nothing")
        self.output = outputs[0] if outputs else self.layers[-1].name
        self.input = next(iter(imported.inputs))
        self.chan = _channels(imported, self.layers)
        self.kinds = {path: m.kind for path, m in imported.modules.items()}
        self.instances = self._closed_modules()
        self.blocks: dict[str, Block] = {}  # name -> block, in the order they are defined
        self.block_order: list[str] = []
        self.replacement: dict[tuple[str, ...], tuple] = {}  # path -> seq items
        self.group_done: set = set()
        self.terms: dict[tuple[str, ...], tuple] = {}
        self.in_progress: set = set()
        self.entry_channels: dict = {}  # in.c of instances that are not modules (None: unknown)

    # -- closed modules --------------------------------------------------------------------

    def _closed_modules(self) -> dict[tuple[str, ...], _Instance]:
        consumers: dict[str, list[Layer]] = {}
        for layer in self.layers:
            for v in layer.inputs:
                consumers.setdefault(v, []).append(layer)
        paths: dict[tuple[str, ...], list[Layer]] = {}
        for layer in self.layers:
            for depth in range(1, len(layer.path) + 1):
                paths.setdefault(layer.path[:depth], []).append(layer)
        closed = {}
        for path, inside in paths.items():
            names = {x.name for x in inside}
            entries = []
            for x in inside:
                for v in x.inputs:
                    if v not in names and v not in entries:
                        entries.append(v)
            exits = [
                x.name
                for x in inside
                if x.name == self.output
                or any(y.name not in names for y in consumers.get(x.name, []))
            ]
            if len(entries) == 1 and len(exits) == 1:
                closed[path] = _Instance(path, inside, entries[0], exits[0])
        return closed

    def _closed_child(self, path: tuple[str, ...], layer: Layer) -> tuple[str, ...] | None:
        """The outermost closed module strictly inside `path` that holds `layer`, if any."""
        for depth in range(len(path) + 1, len(layer.path) + 1):
            if layer.path[:depth] in self.instances:
                return layer.path[:depth]
        return None

    # -- series-parallel terms ----------------------------------------------------------------

    def _raw_term(self, path, layers, entry, exit_) -> tuple:
        """The seq term computing `exit_` from `entry` with `layers` (closed children as
        ("mod", path) items)."""
        items = []  # (inputs, output, term)
        seen = set()
        for layer in layers:
            child = self._closed_child(path, layer)
            if child is None:
                items.append((layer.inputs, layer.name, self._op_term(layer)))
            elif child not in seen:
                seen.add(child)
                inst = self.instances[child]
                items.append(([inst.entry], inst.exit, ("mod", child)))
        producer = {out: (ins, term) for ins, out, term in items}
        order = {entry: 0}
        for i, (_, out, _) in enumerate(items):
            order[out] = i + 1
        idom: dict[str, str | None] = {entry: None}
        depth = {entry: 0}

        def common(a: str, b: str) -> str:
            while a != b:
                if depth[a] >= depth[b]:
                    a = idom[a]
                else:
                    b = idom[b]
            return a

        for ins, out, _ in items:
            for v in ins:
                if v not in depth:
                    raise RecoveryError(
                        f"{'.'.join(path) or 'the model'}: '{v}' is read before it is computed"
                    )
            d = ins[0]
            for v in ins[1:]:
                d = common(d, v)
            idom[out], depth[out] = (
                (d, depth[d] + 1) if len(ins) > 1 else (ins[0], depth[ins[0]] + 1)
            )
        used: Counter = Counter()

        def chain(v: str, start: str) -> list:
            out: list = []
            while v != start:
                if v not in producer:
                    raise RecoveryError(f"'{v}' is not reached from '{start}'")
                ins, term = producer[v]
                used[v] += 1
                if len(ins) == 1:
                    out.append(term)
                    v = ins[0]
                else:
                    d = idom[v]
                    branches = tuple(("seq", tuple(chain(u, d))) for u in ins)
                    out.append(("merge", term[1], branches))
                    v = d
            out.reverse()
            return out

        body = ("seq", tuple(chain(exit_, entry)))
        if any(n > 1 for n in used.values()) or len(used) != len(items):
            raise RecoveryError(
                f"{'.'.join(path) or 'the model'} is not a series-parallel graph "
                "(a value is read by layers in two branches)"
            )
        return body

    @staticmethod
    def _op_term(layer: Layer) -> tuple:
        if layer.op in MERGES:
            return ("merge", layer.op, ())
        return ("op", layer.op, tuple(_full_args(layer.op, layer.args).items()))

    # -- resolution ----------------------------------------------------------------------------

    def _kind(self, path) -> str | None:
        return self.kinds.get(path)

    def _term(self, path) -> tuple:
        """The resolved seq term of a closed module: children replaced, repeats collapsed."""
        if path in self.terms:
            return self.terms[path]
        inst = self.instances[path]
        raw = self._raw_term(path, inst.layers, inst.entry, inst.exit)
        term = self._resolve(raw, path)
        self.terms[path] = term
        return term

    def _resolve(self, term, parent) -> tuple:
        kind = term[0]
        if kind == "seq":
            items = []
            for item in term[1]:
                if item[0] == "mod":
                    items.extend(self._replacement(item[1]))
                else:
                    items.append(self._resolve(item, parent))
            return ("seq", _collapse(tuple(items)))
        if kind == "merge":
            return ("merge", term[1], tuple(self._resolve(b, parent) for b in term[2]))
        return term

    def _replacement(self, path) -> tuple:
        """The items a closed module's place in its parent holds: a call, or its contents."""
        if path in self.replacement:
            return self.replacement[path]
        if path in self.in_progress:  # a class inside itself: inline this instance
            return self._term(path)[1]
        self.in_progress.add(path)
        key = self._group_key(path)
        if key is None:
            result = self._term(path)[1]
        else:
            self._do_group(key)
            result = self.replacement.get(path) or self._term(path)[1]
        self.in_progress.discard(path)
        self.replacement[path] = result
        return result

    def _group_key(self, path):
        kind = self._kind(path)
        if kind in CONTAINERS:
            stage = self._stage_of(path)
            return ("stage", stage) if stage else None
        if kind is not None:
            return ("class", kind)
        return ("struct", self._signature(path))

    def _signature(self, path) -> tuple:
        """The structure of a module without classes, its numbers left out; a merge branch
        that is one module or id is left out too, so that units with and without a
        projection shortcut group (and join with a conditional, if one fits)."""
        inst = self.instances[path]
        raw = self._raw_term(path, inst.layers, inst.entry, inst.exit)
        return _optional_branches(_skeleton(self._sig_resolve(raw)))

    def _sig_resolve(self, term):
        if term[0] == "seq":
            items = [
                ("sig", self._signature(i[1])) if i[0] == "mod" else self._sig_resolve(i)
                for i in term[1]
            ]
            if len(items) > 1 and all(i[0] == "sig" and i == items[0] for i in items):
                return ("seq", (("stage", items[0]),))
            return ("seq", tuple(items))
        if term[0] == "merge":
            return ("merge", term[1], tuple(self._sig_resolve(b) for b in term[2]))
        return term

    def _stage_of(self, path) -> str | None:
        """The class of a container's modules when it holds two or more of one class and
        nothing else (ResNet's layer1: Bottlenecks), read off the module table."""
        inst = self.instances[path]
        children = []
        for layer in inst.layers:
            child = layer.path[: len(path) + 1]
            if len(layer.path) <= len(path) or child not in self.instances:
                return None
            if child not in children:
                children.append(child)
        kinds = {self._kind(c) for c in children}
        if len(children) < 2 or len(kinds) != 1 or None in kinds or kinds & CONTAINERS:
            return None
        return kinds.pop()

    def _members(self, key) -> list[tuple[str, ...]]:
        if key[0] == "stage":
            return [
                p
                for p in self.instances
                if self._kind(p) in CONTAINERS and self._stage_of(p) == key[1]
            ]
        return [p for p in self.instances if p and self._group_key_cheap(p) == key]

    def _group_key_cheap(self, path):
        kind = self._kind(path)
        if kind in CONTAINERS:
            return None
        if kind is not None:
            return ("class", kind)
        return ("struct", self._signature(path))

    def _do_group(self, key) -> None:
        if key in self.group_done:
            return
        self.group_done.add(key)
        members = self._members(key)
        if key[0] == "stage":
            if len(members) < 2:
                return
            bodies = {p: ("seq", _stage_form(self._term(p)[1])) for p in members}
            if not all(
                b[1] and b[1][-1][0] == "repeat" and isinstance(b[1][-1][2], tuple)
                for b in bodies.values()
            ):
                return  # not `first + [rest]*(n - 1)` throughout: inline reads better
            if all(b[1][-1][2][1] < 3 for b in bodies.values()):
                return  # pairs of calls read as well inline
            base = bodies[members[0]][1][0][1] + "_stage"
        else:
            bodies = {p: self._term(p) for p in members}
            if len(members) == 1 and (key[0] == "struct" or _size(bodies[members[0]]) < 3):
                return  # a one-off (without a class name, or of a layer or two) reads inline
            if all(len(b[1]) == 1 and b[1][0][0] == "call" for b in bodies.values()):
                return  # a wrapper around one block: the block's call says it all
            base = _block_name(key[1]) if key[0] == "class" else _scope_name(members[0])
        index = 0
        for paths, block, calls in self._unify(bodies):
            if len(block.body[1]) == 1 and block.body[1][0][0] == "call":
                continue  # it only wraps another block: written in place
            name = self._fresh(base if index == 0 else f"{base}_{index + 1}")
            index += 1
            block.name = name
            self.blocks[name] = block
            self.block_order.append(name)
            for p, args in zip(paths, calls):
                self.replacement[p] = (("call", name, args),)

    def _fresh(self, name: str) -> str:
        from .. import layers
        from ..names import check_identifier
        from ..parser import keywords

        candidate, n = name, 2
        while True:
            try:
                ok = layers.lookup(candidate) is None and candidate not in self.blocks
                ok = ok and candidate not in keywords()
                ok = ok and check_identifier(candidate, None, "block") == candidate
            except NetdslError:
                ok = False
            if ok:
                return candidate
            candidate, n = f"{name}_{n}", n + 1

    # -- anti-unification ------------------------------------------------------------------------

    def _unify(self, bodies: dict) -> list:
        """[(paths, Block, [call args per path])]: one block per structure that cannot join."""
        by_skeleton: dict = {}
        for path, body in bodies.items():
            by_skeleton.setdefault(_skeleton(body), []).append(path)
        groups = list(by_skeleton.items())
        merged = _join_conditionals(groups, bodies)
        out = []
        for skeleton, paths, variants in merged:
            out.append(self._parameterise(skeleton, paths, variants, bodies))
        return out

    def _parameterise(self, skeleton, paths, variants, bodies):
        """One block for `paths`, whose bodies share `skeleton` (variants: per path, the
        body to read holes from, None entries where a path lacks a conditional part)."""
        rows = [_holes(variants[p]) for p in paths]
        keys = _hole_keys(skeleton)
        inc = [
            self.entry_channels[p]
            if p in self.entry_channels
            else self.chan[self.instances[p].entry]
            for p in paths
        ]
        params: list[tuple[str, list]] = []  # name, values per path
        exprs = []
        for h, key in enumerate(keys):
            column = [row[h] for row in rows]
            exprs.append(_relate(key, column, inc, params))
        skeleton = _fill(skeleton, iter(exprs))
        skeleton = _decide_conditions(skeleton, paths, variants, params, inc)
        names = []
        defaults = []
        for name, values in params:
            known = [v for v in values if v is not None]
            common, count = Counter(known).most_common(1)[0]
            has_default = count * 2 > len(paths) or name == "s" and common == 1
            defaults.append(common if has_default else _REQUIRED)
            names.append(name)
        order = [i for i, d in enumerate(defaults) if d is _REQUIRED] + [
            i for i, d in enumerate(defaults) if d is not _REQUIRED
        ]
        block = Block("", [(names[i], defaults[i]) for i in order], skeleton)
        calls = []
        for j, _ in enumerate(paths):
            args = []
            for i in order:
                value = params[i][1][j]
                if value is None:  # the instance lacks the part that reads it: any value
                    known = [v for v in params[i][1] if v is not None]
                    value = (
                        defaults[i]
                        if defaults[i] is not _REQUIRED
                        else Counter(known).most_common(1)[0][0]
                    )
                args.append((names[i], value))
            calls.append(tuple(args))
        return paths, block, calls

    # -- text ------------------------------------------------------------------------------------

    def text(self) -> str:
        root = self._root_term()
        imp = self.imported
        shape = "x".join(str(d) for d in next(iter(imp.inputs.values())))
        lines = [f"# {line}" if line else "#" for line in _header(imp).splitlines()]
        lines.append("")
        known = {
            name: {p: d for p, d in block.params if d is not _REQUIRED}
            for name, block in self.blocks.items()
        }
        for name in self.block_order:
            lines.extend(_block_text(self.blocks[name], known))
        head = _network_name(imp.name)
        items = root[1]
        if items and items[-1][0] == "op" and items[-1][1] == "fc":
            # the classifier's width as the zoo writes it: a parameter, `--param classes=10`
            args = dict(items[-1][2])
            head += f"(classes={args['n']})"
            args["n"] = Sym("classes")
            root = ("seq", (*items[:-1], ("op", "fc", tuple(args.items()))))
        lines.append(f"network {head}:")
        lines.append(f"    input {shape}")
        lines.extend(_packed(root[1], known, "    "))
        return "\n".join(lines) + "\n"

    def _root_term(self) -> tuple:
        raw = self._raw_term((), self.layers, self.input, self.output)
        items = []
        for item in raw[1]:
            items.extend(self._replacement(item[1]) if item[0] == "mod" else [item])
        items = [self._resolve(i, ()) if i[0] == "merge" else i for i in items]
        return ("seq", _progressions(_collapse(self._pool_stages(items, raw))))

    def _pool_stages(self, items: list, raw) -> tuple:
        """Runs of layers that each end in a pool (VGG's `[conv3 c + relu]*n + maxpool2`,
        with no module of their own) become one stage block when two or more share a
        structure; the numbers that differ (widths, n) are its parameters."""
        items = _expanded(items)
        segments, start = [], 0
        for i, item in enumerate(items):
            if item[0] == "op" and item[1] in ("maxpool", "avgpool") and i > start:
                segments.append((start, i + 1))
                start = i + 1
        canonical = {}
        for a, b in segments:
            body = items[a : b - 1]
            for period in range(1, len(body) + 1):
                if len(body) % period == 0 and body == body[:period] * (len(body) // period):
                    break
            unit = ("seq", tuple(body[:period]))
            if all(i[0] == "op" for i in body):
                canonical[(a, b)] = ("seq", (("repeat", unit, len(body) // period), items[b - 1]))
        groups: dict = {}
        for key, body in canonical.items():
            groups.setdefault(_skeleton(body), []).append(key)
        chosen = {}
        for keys in groups.values():
            if len(keys) < 2 or len({canonical[k] for k in keys}) < 2:
                continue
            for key in keys:
                self.entry_channels[key] = None
            result = self._unify({k: canonical[k] for k in keys})
            for paths, block, calls in result:
                block.name = self._fresh("stage")
                self.blocks[block.name] = block
                self.block_order.append(block.name)
                for k, args in zip(paths, calls):
                    chosen[k] = ("call", block.name, args)
        out, i = [], 0
        while i < len(items):
            key = next((k for k in chosen if k[0] == i), None)
            if key is None:
                out.append(items[i])
                i += 1
            else:
                out.append(chosen[key])
                i = key[1]
        return tuple(out)


# ---- terms -----------------------------------------------------------------------------------


def _optional_branches(term):
    if term[0] == "seq":
        return ("seq", tuple(_optional_branches(i) for i in term[1]))
    if term[0] == "merge":
        branches = tuple(
            ("?",) if len(b[1]) <= 1 and all(i[0] == "sig" for i in b[1]) else _optional_branches(b)
            for b in term[2]
        )
        return ("merge", term[1], branches)
    return term


def _full_args(op: str, args: dict) -> dict:
    """`args` with the catalogue's defaults filled in, so that instances compare."""
    from .. import layers

    spec = layers.spec_of(op)
    out = {}
    for arg in getattr(spec, "args", ()):
        if arg.name in args:
            out[arg.name] = args[arg.name]
        elif arg.kind not in ("act", "init") and _plain(arg.default):
            out[arg.name] = arg.default
    for key, value in args.items():
        out.setdefault(key, value)
    return out


def _plain(value) -> bool:
    return isinstance(value, (int, float, bool, str, tuple)) and value is not None


def _defaults_of(op: str) -> dict:
    from .. import layers

    spec = layers.spec_of(op)
    return {a.name: a.default for a in getattr(spec, "args", ()) if _plain(a.default)}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _collapse(items: tuple) -> tuple:
    """Identical consecutive items (or runs of up to 4 items) become one repeat."""
    items = list(items)
    for period in (1, 2, 3, 4):
        out = []
        i = 0
        while i < len(items):
            unit = items[i : i + period]
            n = 1
            while items[i + n * period : i + (n + 1) * period] == unit and len(unit) == period:
                n += 1
            if n >= 2 and not (period == 1 and unit[0][0] == "repeat"):
                body = unit[0] if period == 1 and unit[0][0] == "seq" else ("seq", tuple(unit))
                out.append(("repeat", body, n))
                i += n * period
            else:
                out.append(items[i])
                i += 1
        items = out
    return tuple(items)


def _unrolled(items: tuple) -> list:
    out = []
    for item in items:
        if item[0] == "repeat" and len(item[1][1]) == 1:
            out.extend([item[1][1][0]] * item[2])
        else:
            out.append(item)
    return out


def _progressions(items: tuple) -> tuple:
    """Three or more calls of one block whose numbers step evenly (ConvNeXt's and
    EfficientNet's stochastic depth, `p * index / total`) become one loop:
    `[b(a + i * d) for i in range(n)]`."""
    out, i = [], 0
    while i < len(items):
        j = i + 1
        while j < len(items) and _steps(items[i : j + 1]) is not None:
            j += 1
        if j - i >= 3:
            out.append(("for", _steps(items[i:j]), j - i))
            i = j
        else:
            out.append(items[i])
            i += 1
    return tuple(out)


def _steps(calls):
    """The call with `a + i * d` where its arguments step evenly, or None."""
    if not all(c[0] == "call" and c[1] == calls[0][1] for c in calls) or len(calls) < 2:
        return None
    args = []
    stepped = False
    for k, (name, first) in enumerate(calls[0][2]):
        column = [c[2][k][1] for c in calls]
        if all(v == first for v in column):
            args.append((name, first))
            continue
        if not all(_is_number(v) for v in column):
            return None
        d = column[1] - column[0]
        if any(abs(v - (first + n * d)) > 1e-9 * max(1.0, abs(v)) for n, v in enumerate(column)):
            return None
        a, step = _num(first), _num(d)
        args.append((name, Sym(f"{step} * i" if first == 0 else f"{a} + {step} * i")))
        stepped = True
    return ("call", calls[0][1], tuple(args)) if stepped else None


def _expanded(items) -> list:
    """Repeats of plain layers written out again (to be cut at pools and collapsed anew)."""
    out = []
    for item in items:
        if (
            item[0] == "repeat"
            and isinstance(item[2], int)
            and all(i[0] in ("op", "repeat") for i in item[1][1])
        ):
            out.extend(_expanded(item[1][1]) * item[2])
        else:
            out.append(item)
    return out


def _stage_form(items: tuple) -> tuple:
    """Calls of one block as `first + [rest]*(n - 1)`: the count is a hole like any number."""
    calls = _unrolled(items)
    rest = calls[1:]
    if (
        rest
        and all(c[0] == "call" and c[1] == rest[0][1] for c in calls)
        and all(c == rest[0] for c in rest)
    ):
        return (calls[0], ("repeat", ("seq", (rest[0],)), ("n-1", len(calls))))
    return tuple(items)


def _size(term) -> int:
    if term[0] == "seq":
        return sum(_size(i) for i in term[1])
    if term[0] == "merge":
        return 1 + sum(_size(b) for b in term[2])
    if term[0] == "repeat":
        return _size(term[1])
    return 1


def _walk_values(term, fn):
    """The term with every number (a hole) replaced by fn(key, value)."""
    kind = term[0]
    if kind == "seq":
        return ("seq", tuple(_walk_values(i, fn) for i in term[1]))
    if kind == "group":
        return ("group", tuple(_walk_values(i, fn) for i in term[1]))
    if kind in ("op", "call"):
        return (kind, term[1], tuple((k, _value(k, v, fn)) for k, v in term[2]))
    if kind == "merge":
        return ("merge", term[1], tuple(_walk_values(b, fn) for b in term[2]))
    if kind == "repeat":
        count = term[2]
        if isinstance(count, tuple) and count and count[0] == "n-1":
            count = ("n-1", fn("count", count[1]))
        else:
            count = fn("count", count)
        return ("repeat", _walk_values(term[1], fn), count)
    if kind == "cond":
        return ("cond", term[1], _walk_values(term[2], fn), _walk_values(term[3], fn))
    return term


def _value(key, v, fn):
    numbers = isinstance(v, tuple) and v != _HOLE and v and all(_is_number(x) for x in v)
    if _is_number(v) or numbers or isinstance(v, Sym) or v is None or v == _HOLE:
        return fn(key, v)
    return v


def _skeleton(term) -> tuple:
    return _walk_values(term, lambda key, v: _HOLE)


def _holes(term) -> list:
    out = []
    _walk_values(term, lambda key, v: out.append(v))
    return out


def _hole_keys(skeleton) -> list:
    out = []
    _walk_values(skeleton, lambda key, v: out.append(key))
    return out


def _fill(skeleton, values):
    return _walk_values(skeleton, lambda key, v: next(values))


def _relate(key: str, column: list, inc: list, params: list):
    """A hole's expression: a constant, a relation to `in.c` or an earlier parameter, or a
    new parameter (appended to `params`)."""
    known = [(v, i) for i, v in enumerate(column) if v is not None]
    if not known:
        return None
    values = {v for v, _ in known}
    if len(known) < len(column):  # a part some instances lack: its parameter, or a constant
        for name, vals in params:
            if name.rstrip("0123456789") == key and all(vals[i] == v for v, i in known):
                return Sym(name)
        if len(values) == 1:
            return known[0][0]
    elif len(values) == 1:
        return known[0][0]
    bases = [(n, vals) for n, vals in params if _key_kind(n) == _key_kind(key)]
    if _key_kind(key) == "width" and None not in inc:
        bases.insert(0, ("in.c", inc))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v, _ in known):
        bases = [(n, vals) for n, vals in bases if n != "in.c"]
    for name, vals in bases:
        if all(vals[i] == v for v, i in known):
            return Sym(name)
    for name, vals in bases:
        # a parameter that only a conditional part reads is free where the part is absent:
        # there it takes this number's value, and one parameter serves both
        if None in vals and all(vals[i] in (None, v) for v, i in known):
            for v, i in known:
                vals[i] = v
            return Sym(name)
    for name, vals in bases:
        if not all(isinstance(vals[i], int) and not isinstance(vals[i], bool) for _, i in known):
            continue
        for k in range(2, 9):
            if all(vals[i] * k == v for v, i in known):
                return Sym(f"{name} * {k}")
            if all(vals[i] // k == v and vals[i] % k in (0, 1) for v, i in known):
                return Sym(f"{name} // {k}")
    name = _param_name(key, [n for n, _ in params])
    params.append((name, column))
    return Sym(name)


def _key_kind(name: str) -> str:
    """Numbers relate only to numbers of their kind: a width to widths (`c * 4`, `in.c`),
    padding to kernels (`k // 2`); a stride that equals a width / 8 is a coincidence."""
    key = name.rstrip("0123456789")
    if key in ("k", "p", "d"):
        return "window"
    if key in ("s", "count"):
        return key
    return "width"


def _param_name(key: str, taken: list) -> str:
    key = "n" if key == "count" else key.rstrip("0123456789") or key
    if key not in taken:
        return key
    n = 2
    while f"{key}{n}" in taken:
        n += 1
    return f"{key}{n}"


# ---- conditionals ------------------------------------------------------------------------------


def _join_conditionals(groups: list, bodies: dict) -> list:
    """[(skeleton, paths, {path: body})]: structures that differ only by a merge branch that
    is `id` in some instances join, with a ("cond", None, then, else) marking the place."""
    out = []
    remaining = list(groups)
    while remaining:
        skeleton, paths = remaining.pop(0)
        variants = {p: bodies[p] for p in paths}
        for other in list(remaining):
            joined = _join(skeleton, other[0])
            if joined is None:
                continue
            remaining.remove(other)
            skeleton = joined
            for p in paths:
                variants[p] = _align(joined, variants[p])
            for p in other[1]:
                variants[p] = _align(joined, bodies[p])
            paths = paths + other[1]
        out.append((skeleton, paths, variants))
    return out


def _join(a, b):
    """The skeleton of both, with one ("cond", None, x, id) where exactly one merge branch
    is id in one and x in the other; None if they differ otherwise."""
    if a == b:
        return a
    if a[0] != b[0] or a[0] not in ("seq", "merge", "cond"):
        return None
    if a[0] == "cond":
        return None
    if a[0] == "merge":
        if a[1] != b[1] or len(a[2]) != len(b[2]):
            return None
        diffs = [i for i in range(len(a[2])) if a[2][i] != b[2][i]]
        if len(diffs) != 1:
            return None
        i = diffs[0]
        x, y = a[2][i], b[2][i]
        if x == ("seq", ()) or y == ("seq", ()):
            other = y if x == ("seq", ()) else x
            cond = ("seq", (("cond", None, ("seq", ()), other),))
            return ("merge", a[1], a[2][:i] + (cond,) + a[2][i + 1 :])
        if x[1] and x[1][0][0] == "cond" and len(x[1]) == 1:
            if _join_into(x[1][0], y):
                return a
        if y[1] and y[1][0][0] == "cond" and len(y[1]) == 1:
            if _join_into(y[1][0], x):
                return b
        inner = _join(x, y)
        return None if inner is None else ("merge", a[1], a[2][:i] + (inner,) + a[2][i + 1 :])
    if len(a[1]) != len(b[1]):
        return None
    diffs = [i for i in range(len(a[1])) if a[1][i] != b[1][i]]
    if len(diffs) != 1:
        return None
    i = diffs[0]
    inner = _join(a[1][i], b[1][i])
    return None if inner is None else ("seq", a[1][:i] + (inner,) + a[1][i + 1 :])


def _join_into(cond, other) -> bool:
    return other == ("seq", ()) or other == cond[3]


def _align(skeleton, body):
    """`body` shaped like `skeleton`: at a ("cond", ...) the body's branch goes to `else`
    (None holes in `then`'s absence) or stays empty."""
    if skeleton[0] == "cond":
        return body
    if skeleton[0] == "seq" and body[0] == "seq":
        if len(skeleton[1]) == 1 and skeleton[1][0][0] == "cond":
            cond = skeleton[1][0]
            if body == ("seq", ()):
                return ("seq", (("cond", True, ("seq", ()), _nones(cond[3])),))
            return ("seq", (("cond", False, ("seq", ()), body),))
        return ("seq", tuple(_align(s, b) for s, b in zip(skeleton[1], body[1])))
    if skeleton[0] == "merge" and body[0] == "merge":
        return ("merge", body[1], tuple(_align(s, b) for s, b in zip(skeleton[2], body[2])))
    return body


def _nones(skeleton):
    return _walk_values(skeleton, lambda key, v: None)


def _decide_conditions(term, paths, variants, params, inc):
    """Replace each ("cond", None, ...) by a condition over the parameters and `in.c` that
    holds exactly for the instances whose branch is id."""
    flags_per_path = [_cond_flags(variants[p]) for p in paths]
    index = iter(range(1000))

    def fix(t):
        kind = t[0]
        if kind == "cond" and t[1] is None:
            i = next(index)
            wanted = [flags[i] for flags in flags_per_path]
            exprs = _channel_exprs(t[3]) + siblings
            return ("cond", _find_condition(exprs, wanted, params, inc), t[2], t[3])
        if kind in ("seq", "group"):
            return (kind, tuple(fix(x) for x in t[1]))
        if kind == "merge":
            # an add's branches have one width: the others' last conv says the cond's
            siblings[:] = [e for b in t[2] for e in _channel_exprs(b)]
            return ("merge", t[1], tuple(fix(b) for b in t[2]))
        return t

    siblings: list = []

    return fix(term)


def _cond_flags(term) -> list:
    out = []

    def walk(t):
        if t[0] == "cond":
            out.append(bool(t[1]))
            return
        if t[0] in ("seq", "group"):
            for x in t[1]:
                walk(x)
        elif t[0] == "merge":
            for b in t[2]:
                walk(b)
        elif t[0] == "repeat":
            walk(t[1])

    walk(term)
    return out


def _find_condition(exprs: list, wanted: list, params: list, inc: list) -> str:
    """`s == 1 and in.c == c * 4`: the shapes match exactly where the branch is id (exprs:
    the branch's width, as the parameters write it)."""
    values = dict(params)
    outs = []
    for expr in dict.fromkeys(exprs):
        vals = _eval(expr, values, inc)
        if vals is not None:
            outs.append((expr, vals))
    strides = [n for n, _ in params if n.startswith("s")] + [
        n for n, _ in params if not n.startswith("s")
    ]
    candidates = []
    for expr, vals in outs:
        for s in strides:
            col = values[s]
            candidates.append(
                (
                    f"{s} == 1 and in.c == {expr}",
                    [col[j] == 1 and inc[j] == vals[j] for j in range(len(inc))],
                )
            )
        candidates.append((f"in.c == {expr}", [inc[j] == vals[j] for j in range(len(inc))]))
    for s in strides:
        candidates.append((f"{s} == 1", [values[s][j] == 1 for j in range(len(inc))]))
    for text, holds in candidates:
        if holds == wanted:
            return text
    raise RecoveryError("no condition over the parameters tells where a branch is id")


def _channel_exprs(term) -> list:
    out = []

    def walk(t):
        if t[0] in ("seq", "group"):
            for x in t[1]:
                walk(x)
        elif t[0] == "op":
            for key, v in t[2]:
                if key in ("c", "n") and (isinstance(v, Sym) or _is_number(v)):
                    out.append(v.text if isinstance(v, Sym) else str(v))
        elif t[0] == "merge":
            for b in t[2]:
                walk(b)

    walk(term)
    return out[-1:]


def _eval(expr: str, values: dict, inc: list):
    m = re.fullmatch(r"(\w+(?:\.c)?)(?: (\*|//) (\d+))?", expr)
    if not m:
        return None
    name, op, k = m.groups()
    if name.isdigit():
        return [int(name)] * len(inc)
    base = inc if name == "in.c" else values.get(name)
    if base is None or any(b is None for b in base):
        return None
    if op is None:
        return list(base)
    return [b * int(k) if op == "*" else b // int(k) for b in base]


# ---- text ----------------------------------------------------------------------------------------


def _header(imp: Imported) -> str:
    lines = [f"{imp.name}: imported from {imp.origin}"]
    if imp.command:
        lines.append(f"  {imp.command}")
    for note in imp.notes:
        lines.extend(textwrap.wrap(note, 94))
    lines.append("Blocks and repeats are recovered from the source's modules; layers keep the")
    lines.append("source's order, so its weights load by order (netdsl.weights.load_by_order).")
    return "\n".join(lines)


def _network_name(name: str) -> str:
    cleaned = re.sub(r"\W", "_", name).strip("_") or "imported"
    return cleaned if not cleaned[0].isdigit() else f"n{cleaned}"


def _snake(kind: str) -> str:
    return snake(kind.rsplit(".", 1)[-1]) or "block"  # the class of a qualified name


def _scope_name(path: tuple[str, ...]) -> str:
    """A block named after a scope without a class: `denseblock1` -> denseblock; an index
    (`stages.1`) -> stages_block, two (`stages.1.0`) -> stages_unit."""
    for i, part in enumerate(reversed(path)):
        name = re.sub(r"[\W_]*\d+$", "", part)
        if name:
            return _block_name(name if i == 0 else f"{name}_{('block', 'unit')[min(i, 2) - 1]}")
    return "unit"  # a scope named by a number alone (Keras' conv_dw_1 ... in scope 1)


def _block_name(kind: str) -> str:
    name = _snake(kind)
    return f"b{name}" if name[0].isdigit() else name


def _block_text(block: Block, known: dict) -> list[str]:
    params = ", ".join(
        name if default is _REQUIRED else f"{name}={_num(default)}"
        for name, default in block.params
    )
    head = f"block {block.name}({params})" if params else f"block {block.name}"
    items = block.body[1]
    text = " + ".join(_render(i, known) for i in items) if items else "id"
    if len(head) + len(text) + 3 <= 96:
        return [f"{head} = {text}", ""]
    return [f"{head} =", *_packed(items, known, "    "), ""]


def _packed(items, known: dict, indent: str, width: int = 88) -> list[str]:
    """A sequence one item a line where items are blocks, merges or repeats; runs of plain
    layers share a line (`conv 64 k=7 s=2 p=3 bias=false + bn + relu`)."""
    lines: list[str] = []
    current, current_plain = "", False
    for i, item in enumerate(items):
        text = _render(item, known)
        lead = "" if i == 0 else "+ "
        plain = item[0] == "op"
        if current and plain and current_plain and len(current) + len(text) + 3 <= width:
            current += " + " + text
            continue
        if current:
            lines.append(current)
        current, current_plain = indent + lead + text, plain
    if current:
        lines.append(current)
    return lines


def _num(v) -> str:
    if isinstance(v, Sym):
        return v.text
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        text = repr(float(f"{v:.12g}"))  # 0.07500000000000001 (a sum's rounding) as 0.075
        return text if ("." in text or "e" in text) else text + ".0"
    if isinstance(v, tuple):
        return "(" + ", ".join(_num(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


def _atom(v) -> str:
    text = _num(v)
    if isinstance(v, Sym) and not re.fullmatch(r"[\w.]+", text):
        return f"({text})"
    return text


def _render(term, known: dict) -> str:
    """.net text of a term; `known`: each block's parameter defaults, to leave out."""
    kind = term[0]
    if kind == "seq":
        return " + ".join(_render(i, known) for i in term[1]) if term[1] else "id"
    if kind == "op":
        return _render_op(term[1], dict(term[2]))
    if kind == "call":
        return _render_call(term[1], term[2], known.get(term[1], {}))
    if kind == "merge":
        branches = [_render(b, known) for b in term[2]]
        one_line = f"{term[1]}(" + ", ".join(branches) + ")"
        if len(one_line) <= 80:
            return one_line
        return f"{term[1]}(" + ",\n".join(_wrapped(b, 72) for b in branches) + ")"
    if kind == "repeat":
        count = term[2]
        if isinstance(count, tuple) and count[0] == "n-1":
            c = count[1]
            if not isinstance(c, Sym):
                return _render(("repeat", term[1], c - 1), known)
            count_text = f"({_num(c)} - 1)"
        else:
            count_text = _atom(count)
        if count == 1:
            return _render(term[1], known)
        return f"[{_render(term[1], known)}]*{count_text}"
    if kind == "for":
        return f"[{_render(term[1], known)} for i in range({term[2]})]"
    if kind == "cond":
        then, else_ = _render(term[2], known), _render(term[3], known)
        return f"(if {term[1]} then {then} else {else_})"
    raise RecoveryError(f"cannot render {kind}")


def _wrapped(text: str, width: int) -> str:
    """A long sequence broken before its `+`s (inside a merge's parentheses)."""
    if len(text) <= width or "\n" in text:
        return text
    lines, current = [], ""
    depth = 0
    pieces, start = [], 0
    for i, ch in enumerate(text):
        depth += ch in "(["
        depth -= ch in ")]"
        if depth == 0 and text.startswith(" + ", i):
            pieces.append(text[start:i])
            start = i + 3
    pieces.append(text[start:])
    for piece in pieces:
        if current and len(current) + len(piece) + 3 > width:
            lines.append(current)
            current = "+ " + piece
        else:
            current = f"{current} + {piece}" if current else piece
    lines.append(current)
    return "\n".join(lines)


def _render_call(name: str, args, defaults: dict) -> str:
    """`b(64, s=2)`: required arguments by position, the others by name unless default."""
    parts = []
    for pname, value in args:
        if pname in defaults:
            if defaults[pname] != value:
                parts.append(f"{pname}={_num(value)}")
        else:
            parts.append(_num(value))
    return f"{name}({', '.join(parts)})" if parts else name


def _render_op(op: str, args: dict) -> str:
    from .. import layers

    defaults = _defaults_of(op)
    spec = layers.spec_of(op)
    positional = getattr(spec, "positional", ())
    parts = [op]
    for name, value in args.items():
        if name in defaults and defaults[name] == value and not isinstance(value, Sym):
            continue
        if positional and name == positional[0]:
            parts.append(_atom(value))
        else:
            parts.append(f"{name}={_atom(value)}")
    return " ".join(parts)
