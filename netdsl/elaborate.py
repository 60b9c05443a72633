"""AST -> IR: expand blocks, repeats and conditionals into a scope tree and a DAG.

Evaluation has two halves. `eval` turns an expression into a value: a traced
number (`Num`), a tuple, a string, or a *fragment* (a network expression that
has not met a tensor yet). `apply` runs a fragment on a tensor, creating
nodes. Shapes are inferred as each node is created (layers.py holds the rules),
because the language can branch on them (`if in.c == c then id else ...`).

Numbers are traced (symbolic.py): inside a block its parameters are symbols,
so every attribute remembers how it was computed, and emitters can write one
class per block definition.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from . import ast, habits, initializers
from .errors import NetdslError, Note, SourceSnapshot, Span, did_you_mean
from .ir import BlockSignature, Network, Node, NumericFunction, Output, Scope, TensorArg
from .layers import (
    MERGES,
    ShapeError,
    TensorSize,
    TokenIds,
    check_input,
    fmt_shape,
    framework_name_hint,
    layer_names,
    lookup,
    merge_mismatch_hint,
    merge_shape,
    shape_kind,
)
from .layers_tokens import Tie
from .loader import ModuleEnv
from .names import check_identifier
from .symbolic import (
    FUNCTIONS,
    INSTANCE_FUNCTIONS,
    Bin,
    Const,
    Func,
    Index,
    Local,
    Num,
    Sym,
    Tup,
    UserCall,
    binary,
    channels_of,
    compare,
    ifelse,
    num_compare,
    num_func,
    with_channels,
)
from .train_config import build_train_config
from .values import Fragment, kind_of


@dataclass
class Limits:
    """Bounds that keep mistaken or hostile programs from exhausting the machine."""

    max_nodes: int = 200_000
    max_block_depth: int = 200
    max_repeat: int = 100_000
    max_elements: int = 2**40  # elements of one tensor (batch 1)
    max_int: int = 2**62


# ---- values ------------------------------------------------------------------


class TensorView:
    """A tensor as seen from one scope: its producer and a scope-relative shape."""

    __slots__ = ("node", "shape")

    def __init__(self, node: Node, shape: tuple) -> None:
        self.node = node
        self.shape = shape


def _const(value):
    if isinstance(value, (Num, Tup, initializers.Init)):
        return value.const()
    if isinstance(value, Fragment):
        return value.constified()
    return value


class LayerFrag(Fragment):
    def __init__(self, spec, attrs: dict, span: Span, called_as: str) -> None:
        self.spec, self.attrs, self.span, self.called_as = spec, attrs, span, called_as

    def constified(self):
        return LayerFrag(
            self.spec, {k: _const(v) for k, v in self.attrs.items()}, self.span, self.called_as
        )


class BlockFrag(Fragment):
    def __init__(
        self, definition: ast.BlockDef, menv: ModuleEnv, values: dict, call_args: list, span: Span
    ) -> None:
        self.definition, self.menv, self.values = definition, menv, values
        self.call_args, self.span = call_args, span

    @property
    def kind(self) -> str:
        return f"block {self.definition.name} (layers)"

    @property
    def number_hint(self) -> str:
        """Where a number was expected: blocks build layers; functions compute numbers."""
        params = ", ".join(p.name for p in self.definition.params)
        return (
            f"a block builds layers and has no numeric value; to compute a number, define a "
            f"function: def {self.definition.name}({params}) = expression"
        )

    def constified(self):
        return BlockFrag(
            self.definition,
            self.menv,
            {k: _const(v) for k, v in self.values.items()},
            [(k, _const(v)) for k, v in self.call_args],
            self.span,
        )


class SeqFrag(Fragment):
    def __init__(self, parts: list, span: Span) -> None:
        self.parts, self.span = parts, span

    def constified(self):
        return SeqFrag([p.constified() for p in self.parts], self.span)


class MergeFrag(Fragment):
    def __init__(self, op: str, branches: list, span: Span, branch_spans: list) -> None:
        self.op, self.branches, self.span, self.branch_spans = op, branches, span, branch_spans

    def constified(self):
        return MergeFrag(
            self.op, [b.constified() for b in self.branches], self.span, self.branch_spans
        )


class RepeatFrag(Fragment):
    def __init__(self, body: Fragment, count: Num, span: Span) -> None:
        self.body, self.count, self.span = body, count, span

    def constified(self):
        return RepeatFrag(self.body.constified(), self.count.const(), self.span)


class IndexedRepeatFrag(Fragment):
    """`[body for i in range(...)]`: the body is evaluated anew for each index."""

    def __init__(
        self,
        body: ast.Expr,
        var: str,
        start: Num,
        count: Num,
        env: Env,
        span: Span,
        table: Tup | None = None,
        names: tuple = (),
    ) -> None:
        self.body, self.var, self.start, self.count = body, var, start, count
        self.env, self.span = env, span
        self.table, self.names = table, names  # `for (a, b) in table`: its rows, their names

    def constified(self):
        return IndexedRepeatFrag(
            self.body,
            self.var,
            self.start.const(),
            self.count.const(),
            self.env,
            self.span,
            None if self.table is None else self.table.const(),
            self.names,
        )


class CondFrag(Fragment):
    def __init__(self, cond: Num, taken: bool, branch: Fragment, span: Span) -> None:
        self.cond, self.taken, self.branch, self.span = cond, taken, branch, span
        self.other = None  # the branch not taken, where it is a layer value (see _chosen_layer)

    def constified(self):
        return self.branch.constified()


class IdFrag(Fragment):
    def __init__(self, span: Span) -> None:
        self.span = span


class LazyFrag(Fragment):
    """A part that reads `index(B)`: evaluated when it is applied, after the parts before
    it have made their instances of B (a sequence otherwise evaluates all its parts first)."""

    def __init__(self, expr: ast.Expr, env: Env, ctx: Ctx, constant: bool = False) -> None:
        self.expr, self.env, self.ctx, self.constant = expr, env, ctx, constant
        self.span = expr.span

    def constified(self):
        return LazyFrag(self.expr, self.env, self.ctx, constant=True)


def is_layer_param(value) -> bool:
    """Whether a block argument is a layer that emitters pass to the block's class as a
    constructor argument: an activation without arguments of its own (`relu`,
    `leaky_relu 0.2`) or `id`. Other layers (`bn`, a sequence) are built into the class."""
    if isinstance(value, IdFrag):
        return True
    return (
        isinstance(value, LayerFrag)
        and value.spec.category == "activation"
        and value.attrs.get("act") is None
    )


def _is_layer_word(expr) -> bool:
    """`relu`, `id`, `leaky_relu 0.2`: a layer written by name, the other side of a choice."""
    return isinstance(expr, ast.Identity) or (
        isinstance(expr, (ast.Name, ast.Call))
        and lookup(getattr(expr, "id", None) or expr.name) is not None
    )


def _chosen_layer(value, owner):
    """A block argument `if hs then hardswish else relu` on a traced condition: the layer it
    chose, passed as the layer it is (a constructor argument of the block's class). With
    both branches activations, it keeps the choice (`choice`: the condition, the layer when
    true, the layer when false) and the generated call chooses as written; otherwise the
    condition's symbols are written as constants where the call is."""
    if not isinstance(value, CondFrag) or not is_layer_param(value.branch):
        return value
    if is_layer_param(value.other):
        chosen = copy.copy(value.branch)
        then, orelse = (value.branch, value.other) if value.taken else (value.other, value.branch)
        chosen.choice = (value.cond.expr, then.constified(), orelse.constified())
        return chosen
    _freeze(owner, value.cond.expr)
    return value.branch


class TensorRef(Fragment):
    """A named tensor (`in`, `x = ...`, an input, a block's tensor parameter) used as a value."""

    kind = "a tensor"  # (what error messages call it)

    def __init__(self, view: TensorView, name: str, owner: Scope, span: Span) -> None:
        self.view, self.name, self.owner, self.span = view, name, owner, span


class LabelFrag(Fragment):
    def __init__(self, body: Fragment, name: str, span: Span) -> None:
        self.body, self.name, self.span = body, name, span

    def constified(self):
        return LabelFrag(self.body.constified(), self.name, self.span)


class PlaceFrag(Fragment):
    def __init__(self, body: Fragment, device: str, span: Span) -> None:
        self.body, self.device, self.span = body, device, span

    def constified(self):
        return PlaceFrag(self.body.constified(), self.device, self.span)


_LATER = object()  # a block parameter whose default reads `in`: see _input_defaults
# count(B) in the first pass, before anything is counted: large, so that the rates it
# usually divides (p * index(B) / count(B)) stay valid until the second pass
_FIRST_PASS_COUNT = 1_000_000


def _reads_input(expr, names) -> bool:
    """Whether an expression reads `in`, or one of `names`, anywhere in it."""
    return any(
        isinstance(e, ast.BlockInput) or (isinstance(e, ast.Name) and e.id in names)
        for e in _subexpressions(expr)
    )


def _reads_index(expr) -> bool:
    """Whether an expression calls index(B) anywhere in it."""
    return any(isinstance(e, ast.Call) and e.name == "index" for e in _subexpressions(expr))


def _subexpressions(expr):
    """Every AST node in an expression, without recursion (nesting may be deep)."""
    stack = [expr]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Node):
            yield item
            stack.extend(vars(item).values())
        elif isinstance(item, (tuple, list)):
            stack.extend(item)


_CONSTANTS = {
    "same": "same",
    "none": None,
    "nearest": "nearest",
    "bilinear": "bilinear",
    "cls": "cls",  # token_pool cls / token_pool mean
    "mean": "mean",
}
_TENSOR_SIZES = (
    "a tensor starts a sequence (`t + conv1 c`) or is a merge branch; its sizes are t.c, t.h, t.w"
)


class Env:
    """What names mean while evaluating: values, the module's blocks, and `in`."""

    __slots__ = ("values", "menv", "input", "owner")

    def __init__(self, values: dict, menv: ModuleEnv, input: TensorView | None, owner: Scope):
        self.values, self.menv, self.input, self.owner = values, menv, input, owner


class Ctx:
    """Where `apply` puts new nodes (immutable; `but` makes a changed copy)."""

    __slots__ = ("scope", "device", "depth", "repeat_depth", "stack")

    def __init__(
        self,
        scope: Scope,
        device: str | None = None,
        depth: int = 0,
        repeat_depth: int = 0,
        stack: tuple = (),
    ) -> None:
        self.scope = scope
        self.device = device
        self.depth = depth  # block nesting
        self.repeat_depth = repeat_depth  # repeats nested within the current block
        self.stack = stack  # (block name, call span), outermost first

    def but(self, **changes) -> Ctx:
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return Ctx(**values)


def _owner(scope: Scope) -> Scope:
    """The scope whose symbols are visible in `scope` (cond/group/repeat share their parent's)."""
    while scope.kind in ("repeat", "cond", "group"):
        scope = scope.parent
    return scope


# ---- the elaborator ------------------------------------------------------------


class Elaborator:
    def __init__(
        self,
        limits: Limits | None = None,
        input_shapes: dict | None = None,
        totals: dict | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.input_shapes = dict(input_shapes or {})  # input name (or "*") -> override shape
        self.node_count = 0
        self.signatures: dict[str, BlockSignature] = {}
        self.functions: dict = {}  # name -> (FunctionDef, ModuleEnv) of each function called
        self._calling: list[str] = []  # the functions being evaluated, innermost last
        self._methods: dict[type, object] = {}  # AST node or fragment class -> its method
        # the texts the network is elaborated from, kept with it: what it quotes later (the
        # generated code's docstrings) never reads a newer file of the same path
        self.sources = SourceSnapshot()
        self.channels_last: tuple | None = None  # (statement, C, H, W): an input written H x W x C
        # index(B) and count(B): instances of each block made so far (keyed by definition),
        # each block instance's position, the totals a first pass found (see `network`)
        self.made: dict[ast.BlockDef, int] = {}
        self.positions: dict[int, int] = {}  # id(block scope) -> its index among its block's
        self.totals = dict(totals) if totals is not None else None
        self.counted: dict[ast.BlockDef, Span] = {}  # count(B) read: where, first
        self.instances_read = False  # index() or count() was read: see _network's end
        # id(owner scope) -> the symbols that repeat counts and conditions there read, which
        # decide how many instances of each block there are (lifted to the caller on exit)
        self.structural: dict[int, set] = {}
        # a network body's `defaults`: {layer: {arg: (value, span)}}, for every layer the
        # network builds (a layer's own file's defaults, and its own arguments, win)
        self.network_defaults: dict[str, dict] = {}

    # -- entry point --------------------------------------------------------------

    def network(
        self, menv: ModuleEnv, name: str | None = None, overrides: dict | None = None
    ) -> Network:
        module = menv.module
        if not module.networks:
            raise NetdslError(
                "this file defines no network",
                module.span,
                hint="add one: `network name:` followed by `input 3x224x224` and layers",
            )
        if name is None:
            ndef = module.networks[0]
        else:
            found = [n for n in module.networks if n.name == name]
            if not found:
                raise NetdslError(
                    f"no network '{name}' in {menv.path}",
                    module.span,
                    hint=did_you_mean(name, [n.name for n in module.networks]),
                )
            ndef = found[0]
        self.sources = SourceSnapshot.of(_module_files(menv))
        self._check_functions(menv)
        try:
            net = self._network(menv, ndef, dict(overrides or {}))
        except NetdslError as error:
            if self.counted and self.totals is None:
                names = ", ".join(f"count({b.name})" for b in self.counted)
                error.with_note(
                    f"in a first pass that counts blocks, where {names} reads "
                    f"{_FIRST_PASS_COUNT:,}",
                    next(iter(self.counted.values())),
                )
            raise
        if self.counted and self.totals is None:
            # count(B) needs the whole network: elaborate again, knowing the totals
            totals = {b: self.made.get(b, 0) for b in self.counted}
            return Elaborator(self.limits, self.input_shapes, totals).network(menv, name, overrides)
        for bdef, span in self.counted.items():
            if self.made.get(bdef, 0) != self.totals.get(bdef):
                raise NetdslError(
                    f"count({bdef.name}) changes how many {bdef.name} the network has "
                    f"({self.totals.get(bdef)} when it was read, {self.made.get(bdef, 0)} after)",
                    span,
                    hint=f"let count({bdef.name}) set rates and widths, not whether or how "
                    f"often {bdef.name} is used",
                )
        return net

    def _network(self, menv: ModuleEnv, ndef: ast.NetworkDef, overrides: dict) -> Network:
        root = Scope(kind="network", parent=None, span=ndef.span, block=ndef.name)
        check_identifier(ndef.name, ndef.name_span, "network")
        known = {p.name for p in ndef.params}
        for key in overrides:
            if key not in known:
                raise NetdslError(
                    f"network {ndef.name} has no parameter '{key}'",
                    ndef.span,
                    hint=did_you_mean(key, known)
                    or (
                        f"its parameters are: {', '.join(sorted(known))}"
                        if known
                        else "it takes no parameters"
                    ),
                )
        values: dict = {}
        concrete: dict = {}
        for p in ndef.params:
            check_identifier(p.name, p.span, "parameter")
            if p.name in overrides:
                v = _override_value(overrides[p.name])
                for item in v.items if isinstance(v, Tup) else (v,):
                    if isinstance(item, Num):
                        try:
                            self._check_number(item.value, p.span)
                        except NetdslError as e:
                            raise NetdslError(
                                f"the value given for parameter '{p.name}': {e.message}", p.span
                            ) from None
            elif p.default is not None:
                v = self.eval(p.default, Env(dict(values), menv, None, root), Ctx(root))
            else:
                raise NetdslError(
                    f"network parameter '{p.name}' needs a default value",
                    p.span,
                    hint=f"write {p.name}=<value>, or pass --param {p.name}=...",
                )
            concrete[p.name] = _const(v)
            values[p.name] = self._symbolize(p.name, v, p.span)
        root.args = concrete
        env = Env(values, menv, None, root)
        ctx = Ctx(root)
        self.network_defaults = self._defaults(
            [s for s in ndef.body if isinstance(s, ast.Defaults)], env, ctx, constant=True
        )
        state = _NetworkState()
        self._exec(ndef.body, env, ctx, None, state)
        if not state.inputs:
            raise NetdslError(
                f"network {ndef.name} has no input",
                ndef.span,
                hint="add a line such as `input 3x224x224`",
            )
        if not any(not o.train_only for o in state.outputs):
            if state.current is None:
                raise NetdslError(f"network {ndef.name} computes nothing", ndef.span)
            state.outputs.insert(0, Output("output", state.current.node, False, ndef.span))
            root.output, root.out_shape = state.current.node, state.current.shape
        else:
            main = next(o for o in state.outputs if not o.train_only)
            root.output, root.out_shape = main.node, main.node.shape
        if self.instances_read:  # index() and count() were written as numbers: they hold
            # only while the parameters that decide how often each block is used keep theirs
            root.frozen |= self.structural.get(id(root), set()) & concrete.keys()
        ordered = _finish(root, state.outputs)
        signature = BlockSignature(
            ndef.name,
            [(p.name, concrete[p.name]) for p in ndef.params],
            self.sources.text(ndef.span).strip(),
            ndef.span,
        )
        net = Network(
            name=ndef.name,
            path=menv.path,
            params=concrete,
            signature=signature,
            frozen_params=sorted(root.frozen & concrete.keys()),
            inputs=state.inputs,
            outputs=state.outputs,
            root=root,
            ordered=ordered,
            blocks=dict(self.signatures),
            train=build_train_config(menv.module.train),
            sources=self.sources,
            functions=self._function_codes(),
        )
        return net

    def _function_codes(self) -> dict:
        """name -> NumericFunction for every function the network called."""
        out = {}
        for name, (fdef, menv) in sorted(self.functions.items()):
            defaults = {
                p.name: self._function_default(p, menv, Ctx(Scope("block", None, p.span))).value
                for p in fdef.params
                if p.default is not None
            }
            out[name] = function_code(fdef, defaults)
        return out

    def _check_functions(self, menv: ModuleEnv) -> None:
        for fdef in menv.module.functions:
            check_identifier(fdef.name, fdef.name_span, "function")
            if fdef.name in FUNCTIONS or fdef.name in INSTANCE_FUNCTIONS or fdef.name == "range":
                raise NetdslError(
                    f"function '{fdef.name}' would hide the built-in function of that name",
                    fdef.name_span,
                    hint="choose another name",
                )
            if lookup(fdef.name) is not None or fdef.name in MERGES:
                raise NetdslError(
                    f"function '{fdef.name}' would hide the built-in layer of that name",
                    fdef.name_span,
                    hint="choose another name",
                )
            with_default = None
            for p in fdef.params:
                check_identifier(p.name, p.span, "function parameter")
                if p.default is not None:
                    with_default = p
                elif with_default is not None:  # (the generated Python function could not)
                    raise NetdslError(
                        f"function {fdef.name}: '{p.name}' has no default but follows "
                        f"'{with_default.name}', which has one",
                        p.span,
                        hint="give it a default, or put it before the parameters with defaults",
                    )

    # -- statements ---------------------------------------------------------------

    def _exec(
        self, stmts, env: Env, ctx: Ctx, current: TensorView | None, state: _NetworkState | None
    ) -> TensorView | None:
        for stmt in stmts:
            current = self._stmt(stmt, env, ctx, current, state)
            if state is not None:
                state.current = current
        return current

    def _stmt(self, stmt, env, ctx, current, state):
        if isinstance(stmt, ast.Defaults):
            if state is None:
                raise NetdslError(
                    "`defaults` belongs in a network or at the top of a file, not in a block",
                    stmt.span,
                    hint="a block's layers take the defaults of their file and of the network "
                    "that uses them",
                )
            return current  # read before the body runs: see _network
        if isinstance(stmt, ast.InputStmt):
            if state is None:
                raise NetdslError(
                    "`input` belongs in a network, not in a block",
                    stmt.span,
                    hint="a block's input is `in`",
                )
            return self._input(stmt, env, ctx, state)
        if isinstance(stmt, ast.OutputStmt):
            if state is None:
                raise NetdslError(
                    "`output` belongs in a network; a block's output is its last value", stmt.span
                )
            self._output(stmt, env, ctx, current, state)
            return current
        if isinstance(stmt, ast.LetStmt):
            return self._let(stmt, env, ctx, current)
        if isinstance(stmt, ast.IfStmt):
            cond = self._bool(self.eval(stmt.cond, env, ctx), stmt.cond.span)
            self._decides(env.owner, cond.expr)
            if cond.value:
                return self._stmt(stmt.body, env, ctx, current, state)
            return current
        value = self.eval(stmt.expr, env, ctx)
        if not isinstance(value, Fragment):
            raise NetdslError(
                f"this line computes {kind_of(value)} and does nothing with it",
                stmt.span,
                hint="bind it to a name: `n = ...`",
            )
        return self._apply_to_current(value, current, ctx, stmt.span)

    def _apply_to_current(self, frag, current, ctx, span):
        if current is None and not _starts_with_ref(frag):
            raise NetdslError(
                "there is no tensor to apply this to yet",
                span,
                hint="start the network with a line such as `input 3x224x224`",
            )
        return self.apply(frag, current, ctx)

    def _input(self, stmt: ast.InputStmt, env, ctx, state):
        value = self.eval(stmt.shape, env, ctx)
        name = stmt.name or ("input" if not state.inputs else f"input{len(state.inputs) + 1}")
        override = self.input_shapes.get(
            name, self.input_shapes.get("*") if not state.inputs else None
        )
        if override is not None:
            value = Tup(Num(d) for d in override)
        dims = list(value.items) if isinstance(value, Tup) else [value]
        vocab = None
        if stmt.vocab is not None:
            vocab = self.eval(stmt.vocab, env, ctx)
            if len(dims) != 1 or not (
                isinstance(vocab, Num) and type(vocab.value) is int and vocab.value >= 1
            ):
                raise NetdslError(
                    "token ids are a sequence length and a vocabulary size, "
                    "e.g. input 1024 tokens of 50257",
                    stmt.shape.span if len(dims) != 1 else stmt.vocab.span,
                )
        if len(dims) not in (1, 2, 3) or not all(
            isinstance(d, Num)
            and isinstance(d.value, int)
            and not isinstance(d.value, bool)
            and d.value >= 1
            for d in dims
        ):
            raise NetdslError(
                "input shape must be C x H x W (e.g. 3x224x224), N x D tokens (197x768), a "
                "feature count, or token ids (1024 tokens of 50257)",
                stmt.shape.span,
            )
        self._check_size(dims, stmt.shape.span)
        swapped = habits.channels_last([d.value for d in dims])
        if override is None and swapped and self.channels_last is None:
            self.channels_last = (stmt, *swapped)
        if stmt.name:
            check_identifier(stmt.name, stmt.span, "input")
        if name in state.inputs or name in env.values:
            raise NetdslError(f"'{name}' is already defined", stmt.span)
        shape = TokenIds(dims, vocab.value, vocab) if vocab is not None else tuple(dims)
        node = self._node("input", {}, [], [], shape, stmt.span, ctx)
        node.var = node.label = name
        state.inputs[name] = node
        view = TensorView(node, shape)
        env.values[name] = TensorRef(view, name, _owner(ctx.scope), stmt.span)
        if env.input is None:
            env.input = view
        return view

    def _output(self, stmt: ast.OutputStmt, env, ctx, current, state):
        train_only = False
        for ann in stmt.annotations:
            if ann.name != "train" or ann.args:
                raise NetdslError(
                    f"unknown output annotation '@{ann.name}'",
                    ann.span,
                    hint="outputs take @train (a train-time-only output)",
                )
            train_only = True
        name = stmt.name or "output"
        check_identifier(name, stmt.span, "output")
        if any(o.name == name for o in state.outputs):
            raise NetdslError(f"output '{name}' is defined twice", stmt.span)
        if stmt.expr is None:
            if current is None:
                raise NetdslError("nothing to output yet", stmt.span)
            view = current
        else:
            value = self.eval(stmt.expr, env, ctx)
            if not isinstance(value, Fragment):
                raise NetdslError(
                    f"an output must be a network expression, not {kind_of(value)}", stmt.expr.span
                )
            view = self._apply_to_current(value, current, ctx, stmt.span)
        state.outputs.append(Output(name, view.node, train_only, stmt.span))

    def _let(self, stmt: ast.LetStmt, env: Env, ctx, current):
        check_identifier(stmt.name, stmt.span, "value")
        if stmt.name in env.values:
            raise NetdslError(
                f"'{stmt.name}' is already defined",
                stmt.span,
                hint="names are bound once; choose another name",
            )
        value = self.eval(stmt.expr, env, ctx)
        if isinstance(value, Fragment):
            view = self._apply_to_current(value, current, ctx, stmt.span)
            _owner(ctx.scope).value_names.setdefault(id(view.node), stmt.name)
            env.values[stmt.name] = TensorRef(view, stmt.name, _owner(ctx.scope), stmt.span)
            return view
        if isinstance(value, Num) and not value.is_const:  # generated code computes it
            check_identifier(stmt.name, stmt.span, "value", local=True)
            value = Num(value.value, Local(stmt.name, value.expr))
        env.values[stmt.name] = value
        return current

    # -- evaluation -----------------------------------------------------------

    def eval(self, expr: ast.Expr, env: Env, ctx: Ctx):
        method = self._methods.get(type(expr))
        if method is None:  # dispatch on the node's class, looked up once per class
            method = self._methods[type(expr)] = getattr(self, "_eval_" + type(expr).__name__)
        return method(expr, env, ctx)

    def _eval_Number(self, e, env, ctx):
        self._check_number(e.value, e.span)
        return Num(e.value)

    def _eval_Shape(self, e, env, ctx):
        for d in e.dims:
            self._check_number(d, e.span)
        return Tup(Num(d) for d in e.dims)

    def _eval_String(self, e, env, ctx):
        return e.value

    def _eval_Bool(self, e, env, ctx):
        return Num(e.value)

    def _eval_Identity(self, e, env, ctx):
        return IdFrag(e.span)

    def _eval_BlockInput(self, e, env, ctx):
        if env.input is None:
            raise NetdslError("`in` is only defined inside a block or after `input`", e.span)
        return TensorRef(env.input, "in", env.owner, e.span)

    def _eval_Group(self, e, env, ctx):
        return self.eval(e.body, env, ctx)

    def _eval_Comprehension(self, e, env, ctx):
        it = e.iterable
        is_range = isinstance(it, ast.Call) and it.name == "range" and it.parenthesised
        if not is_range or e.names:
            return self._table_repeat(e, env, ctx)
        if it.kwargs or not 1 <= len(it.args) <= 2:
            raise NetdslError(
                "a repeat with an index reads [body for i in range(n)]",
                it.span,
                hint="range(n) counts 0 .. n-1; range(a, b) a .. b-1",
            )
        bounds = []
        for arg in it.args:
            value = self._number(self.eval(arg, env, ctx), arg.span)
            if not isinstance(value.value, int):
                raise NetdslError(f"range() takes integers, got {value.value!r}", arg.span)
            bounds.append(value)
        start, stop = (Num(0), bounds[0]) if len(bounds) == 1 else bounds
        count = stop - start
        if count.value < 0:
            count = Num(0)
        if count.value > self.limits.max_repeat:
            raise NetdslError(
                f"repeat count {count.value} exceeds the limit of {self.limits.max_repeat}", it.span
            )
        check_identifier(e.var, e.span, "index")
        if e.var in env.values:
            raise NetdslError(
                f"'{e.var}' is already defined", e.span, hint="choose another name for the index"
            )
        return IndexedRepeatFrag(e.body, e.var, start, count, env, e.span)

    def _table_repeat(self, e, env, ctx):
        """`[body for (t, c) in table]` (or `for row in table`): once per row."""
        table = self.eval(e.iterable, env, ctx)
        if not isinstance(table, Tup):
            raise NetdslError(
                "a repeat with an index reads [body for i in range(n)]",
                e.iterable.span,
                hint="range(n) counts 0 .. n-1; range(a, b) a .. b-1",
            )
        names = e.names or (e.var,)
        for name in names:
            check_identifier(name, e.span, "index")
            if name in env.values:
                raise NetdslError(
                    f"'{name}' is already defined", e.span, hint="choose another name"
                )
        if e.names:
            for i, row in enumerate(table.items):
                if not isinstance(row, Tup) or len(row) != len(e.names):
                    size = "a number"
                    if isinstance(row, Tup):
                        size = f"{len(row)} item{'s' if len(row) != 1 else ''}"
                    raise NetdslError(
                        f"row {i} of the table has {size}; the repeat names {len(e.names)}",
                        e.iterable.span,
                    )
        n = len(table.items)
        if n > self.limits.max_repeat:
            raise NetdslError(
                f"repeat count {n} exceeds the limit of {self.limits.max_repeat}", e.span
            )
        count = Num(n) if table.is_const else Num(n, Func("len", (table.expr,)))
        symbol = e.var or f"{e.names[0]}_row"
        return IndexedRepeatFrag(e.body, symbol, Num(0), count, env, e.span, table, names)

    def _eval_Tuple(self, e, env, ctx):
        items = [self.eval(i, env, ctx) for i in e.items]
        for item, node in zip(items, e.items):
            if not isinstance(item, (Num, Tup)):
                raise NetdslError(f"tuples hold numbers and tuples, not {kind_of(item)}", node.span)
        return Tup(items)

    def _eval_Index(self, e, env, ctx):
        base = self.eval(e.base, env, ctx)
        if not isinstance(base, Tup):
            raise NetdslError(
                f"only tuples can be indexed; this is {kind_of(base)}",
                e.base.span,
                hint=_TENSOR_SIZES if isinstance(base, TensorRef) else None,
            )
        index = self.eval(e.index, env, ctx)
        if not (
            isinstance(index, Num)
            and isinstance(index.value, int)
            and not isinstance(index.value, bool)
        ):
            shown = repr(index.value) if isinstance(index, Num) else kind_of(index)
            raise NetdslError(f"a tuple index must be an integer, got {shown}", e.index.span)
        n = len(base.items)
        if not -n <= index.value < n:
            raise NetdslError(
                f"index {index.value} is out of range for a tuple of {n} item"
                f"{'s' if n != 1 else ''}",
                e.index.span,
                hint=f"indices run from 0 to {n - 1} (or -{n} to -1 from the end)" if n else None,
            )
        item = base.items[index.value]
        if base.is_const:
            return _const(item)
        if index.is_const:  # `widths[-1]` stays the last item, as written
            return item if index.value >= 0 else _traced(item, Index(base.expr, index.value))
        return _traced(item, Index(base.expr, index.expr))

    def _eval_Name(self, e, env, ctx):
        if e.id in env.values:
            return env.values[e.id]
        if e.id in _CONSTANTS:
            return _CONSTANTS[e.id]
        return self._call(ast.Call(e.span, e.id, (), (), False), env, ctx)

    def _eval_Attr(self, e, env, ctx):
        obj = self.eval(e.obj, env, ctx)
        self._expect_tensor(e.obj, obj, env)
        if not isinstance(obj, TensorRef):
            raise NetdslError(
                f"only tensors have attributes; this is {kind_of(obj)}",
                e.obj.span,
                hint="use in.c, in.h, in.w, or those of a named value",
            )
        shape = self._ref_shape(obj, env)
        fields = {
            "image": {"c": 0, "h": 1, "w": 2},
            "tokens": {"n": 0, "d": 1},
            "ids": {"n": 0},
        }.get(shape_kind(shape), {"c": 0, "f": 0, "features": 0})
        if e.attr not in fields:
            raise NetdslError(
                f"a {fmt_shape(shape)} tensor has no attribute '{e.attr}'",
                e.span,
                hint=did_you_mean(e.attr, fields) or f"available: {', '.join(fields)}",
            )
        return shape[fields[e.attr]]

    def _expect_tensor(self, expr: ast.Expr, value, env: Env) -> None:
        """Where a tensor belongs (a sequence's start, a merge branch, `p.c`), a parameter of
        the block that was given something else: the call passed the wrong kind of value."""
        owner = env.owner
        if (
            isinstance(value, Fragment)
            or owner is None
            or owner.kind != "block"
            or not isinstance(expr, ast.Name)
            or expr.id not in owner.args
        ):
            return
        raise NetdslError(
            f"block {owner.block} uses '{expr.id}' as a tensor, but was given {kind_of(value)}",
            expr.span,
            hint=f"pass a named tensor for '{expr.id}': {owner.block}(x, ...) where `x = ...` "
            "names a tensor",
        )

    def _ref_shape(self, ref: TensorRef, env: Env) -> tuple:
        if ref.owner is env.owner:
            return ref.view.shape
        return tuple(d.const() for d in ref.view.shape)

    def _eval_Call(self, e, env, ctx):
        return self._call(e, env, ctx)

    def _call(self, e: ast.Call, env: Env, ctx: Ctx):
        name = e.name
        if name in env.values:
            value = env.values[name]
            if e.args or e.kwargs:
                raise NetdslError(
                    f"'{name}' is {kind_of(value)}, not a layer or block; it takes no arguments",
                    e.span,
                )
            return value
        if name in MERGES:
            return self._merge(e, env, ctx)
        if name in INSTANCE_FUNCTIONS:
            return self._instances(e, env, ctx)
        if name in FUNCTIONS:
            block = env.menv.lookup_block(name)
            if block is not None:  # `block len(c) = ...`: refused as a block name
                check_identifier(name, block[0].name_span, "block")
            if not e.parenthesised:
                raise NetdslError(f"write {name}(...) with parentheses", e.span)
            return self._function(e, env, ctx)
        function = env.menv.lookup_function(name)
        if function is not None:
            if not e.parenthesised:
                raise NetdslError(f"write {name}(...) with parentheses", e.span)
            return self._user_function(e, function[0], function[1], env, ctx)
        found = env.menv.lookup_block(name)
        if found is not None:
            return self._bind_block(e, found[0], found[1], env, ctx)
        if name in initializers.FAMILIES:
            return self._initializer(e, env, ctx)
        layer = lookup(name)
        if layer is not None:
            return self._layer(e, layer, env, ctx)
        candidates = (
            list(env.values)
            + env.menv.block_names()
            + list(env.menv.functions)
            + layer_names()
            + list(MERGES)
        )
        hint = (
            habits.framework_call(e)
            or habits.stdlib_hint(name)
            or habits.module_hint(name)
            or framework_name_hint(name)
            or did_you_mean(name, candidates)
        )
        if hint is None and name.startswith(("conv", "maxpool", "avgpool")):
            hint = "shorthands take a number: conv3, maxpool2, ..."
        raise NetdslError(f"unknown layer, block or name '{name}'", e.span, hint=hint)

    def _initializer(self, e: ast.Call, env, ctx) -> initializers.Init:
        """`kaiming_normal(fan_out, relu)`, `normal(0, 0.01)`, `zeros`: a weight init. Its
        words (fan_out, relu, uniform, ...) are words here, whatever they name elsewhere."""

        def value(expr):
            if isinstance(expr, ast.Name) and expr.id not in env.values:
                if any(expr.id in words for words in initializers.WORDS.values()):
                    return expr.id
                try:
                    v = self.eval(expr, env, ctx)
                except NetdslError as err:
                    if err.message.startswith("unknown layer, block or name"):
                        return expr.id  # a misspelt word: `make` says which it may be
                    raise
            else:
                v = self.eval(expr, env, ctx)
            if isinstance(v, LayerFrag) and v.spec.name in initializers.NONLINEARITIES:
                return v.spec.name  # `relu` the layer, as a word
            return v

        positional = [(value(a), a.span) for a in e.args]
        keyword = [(k, value(v), s) for k, v, s in e.kwargs]
        return initializers.make(e.name, positional, keyword, e.span)

    def _instances(self, e: ast.Call, env, ctx) -> Num:
        """index(B): inside an instance of block B, its position among the network's B
        (from 0, in network order); elsewhere, how many B come before this point.
        count(B): how many B the network has (known after a first pass: see `network`)."""
        usage = f"{e.name}() takes the name of a block: {e.name}(unit)"
        if not e.parenthesised:
            raise NetdslError(f"write {e.name}(...) with parentheses", e.span)
        if e.kwargs or len(e.args) != 1 or not isinstance(e.args[0], ast.Name):
            raise NetdslError(usage, e.span)
        if self._calling:
            raise NetdslError(
                f"{e.name}() counts the network's blocks; a function cannot read it",
                e.span,
                hint=f"pass {e.name}(...) to the function as an argument",
            )
        arg = e.args[0]
        found = env.menv.lookup_block(arg.id)
        if found is None:
            raise NetdslError(
                f"{e.name}(): '{arg.id}' is not a block",
                arg.span,
                hint=did_you_mean(arg.id, env.menv.block_names()) or usage,
            )
        bdef = found[0]
        self.instances_read = True
        if e.name == "count":
            self.counted.setdefault(bdef, e.span)
            return Num((self.totals or {}).get(bdef, _FIRST_PASS_COUNT))
        scope = ctx.scope
        while scope is not None:
            if scope.kind == "block" and id(scope) in self.positions and scope.block == bdef.name:
                return Num(self.positions[id(scope)])
            scope = scope.parent
        return Num(self.made.get(bdef, 0))

    def _function(self, e: ast.Call, env, ctx):
        if e.kwargs:
            raise NetdslError(f"{e.name}() takes no keyword arguments", e.kwargs[0][2])
        args = [self.eval(a, env, ctx) for a in e.args]
        low, high = _ARITY.get(e.name, (1, 1))
        if not low <= len(args) <= (high or len(args)):
            takes = {
                (2, None): "at least 2 arguments",
                (1, 1): "1 argument",
                (2, 2): "2 arguments",
                (1, 2): "1 or 2 arguments",
            }[(low, high)]
            raise NetdslError(f"{e.name}() takes {takes}", e.span)
        if e.name == "len":
            if not isinstance(args[0], Tup):
                raise NetdslError(f"len() takes a tuple, got {kind_of(args[0])}", e.args[0].span)
            if args[0].is_const:
                return Num(len(args[0]))
            return Num(len(args[0]), Func("len", (args[0].expr,)))
        for a, node in zip(args, e.args):
            self._number(a, node.span)
        values = [a.value for a in args]
        if e.name == "log" and values[0] <= 0:
            raise NetdslError(f"log() needs a positive number, got {values[0]!r}", e.span)
        if e.name == "sqrt" and values[0] < 0:
            raise NetdslError(f"sqrt() needs a non-negative number, got {values[0]!r}", e.span)
        if e.name == "log" and len(values) == 2 and (values[1] <= 0 or values[1] == 1):
            raise NetdslError(
                f"the base of log() must be positive and not 1, got {values[1]!r}", e.span
            )
        if e.name == "pow":
            self._check_power(values[0], values[1], e.span)
        try:
            result = num_func(e.name, args)
        except (OverflowError, ValueError) as exc:
            message = "number too large" if isinstance(exc, OverflowError) else str(exc)
            raise NetdslError(f"{e.name}(): {message}", e.span) from None
        self._check_number(result.value, e.span)
        return result

    def _user_function(self, e: ast.Call, fdef: ast.FunctionDef, menv, env, ctx):
        """A call of `def name(params) = expression`: its value now; in generated code a call
        of the same function (or, when every argument is a constant, the value)."""
        params = fdef.params
        if fdef.name in self._calling:
            raise NetdslError(
                f"function {fdef.name} calls itself; functions cannot be recursive",
                e.span,
                hint="write the computation without recursion",
            )
        given = self._given(
            e, f"function {fdef.name}", params, _signature_text(fdef, "def"), env, ctx
        )
        values: dict = {}
        exprs: list = []
        for p in params:
            if p.name in given:
                value, span = given[p.name]
            elif p.default is not None:
                value, span = self._function_default(p, menv, ctx), p.default.span
            else:
                raise NetdslError(
                    f"function {fdef.name} needs argument '{p.name}'",
                    e.span,
                    hint=f"its definition: {_signature_text(fdef, 'def')}",
                )
            if not isinstance(value, (Num, Tup)):
                raise NetdslError(
                    f"function {fdef.name} takes numbers and tuples; '{p.name}' is "
                    f"{kind_of(value)}",
                    span,
                )
            values[p.name] = value.const()
            exprs.append(value.expr)
        self._calling.append(fdef.name)
        try:
            result = self.eval(fdef.body, Env(values, menv, None, None), ctx)
        except NetdslError as error:
            _note_call(error, fdef.name, e.span, "function")
            raise
        finally:
            self._calling.pop()
        if not isinstance(result, Num):
            raise NetdslError(
                f"function {fdef.name} returns {kind_of(result)}, not a number", fdef.body.span
            ).with_note(f"in function {fdef.name}, used here", e.span)
        self.functions.setdefault(fdef.name, (fdef, menv))
        if all(isinstance(x, Const) for x in exprs):
            return Num(result.value)
        # trailing arguments left to their defaults stay out, as in the call
        while exprs and params[len(exprs) - 1].name not in given:
            exprs.pop()
        return Num(result.value, UserCall(fdef.name, tuple(exprs)))

    def _function_default(self, p: ast.Param, menv, ctx):
        value = self.eval(p.default, Env({}, menv, None, None), ctx)
        if not isinstance(value, (Num, Tup)) or not value.is_const:
            raise NetdslError(
                f"the default of '{p.name}' must be a constant number or tuple",
                p.default.span,
                hint="the generated Python function has the same defaults",
            )
        return value

    def _merge(self, e: ast.Call, env, ctx):
        if not e.parenthesised:
            raise NetdslError(f"{e.name} needs its branches in parentheses: {e.name}(a, b)", e.span)
        if e.kwargs:
            raise NetdslError(f"{e.name} takes no keyword arguments", e.kwargs[0][2])
        if len(e.args) < 2:
            raise self._missing_comma(e, env) or NetdslError(
                f"{e.name} needs at least two branches", e.span, hint=f"e.g. {e.name}(id, conv3 64)"
            )
        branches = []
        for i, arg in enumerate(e.args):
            if i and _reads_index(arg):  # after the branches before it are built
                branches.append(LazyFrag(arg, env, ctx))
                continue
            value = self.eval(arg, env, ctx)
            self._expect_tensor(arg, value, env)
            if not isinstance(value, Fragment):
                raise NetdslError(
                    f"a branch of {e.name} must be a network expression, not {kind_of(value)}",
                    arg.span,
                )
            branches.append(value)
        return MergeFrag(e.name, branches, e.span, [a.span for a in e.args])

    def _missing_comma(self, e: ast.Call, env: Env) -> NetdslError | None:
        """`concat(conv1 8 conv3 8)`: the space form reads the second branch as an argument of
        the first, so a comma left out shows as a merge with one branch."""
        operands, layers = list(e.args[:1]), []  # the layers of `a + b + ...`, in order
        while operands:
            node = operands.pop()
            if isinstance(node, ast.BinOp) and node.op == "+":
                operands += [node.right, node.left]
            elif isinstance(node, ast.Call) and not node.parenthesised:
                layers.append(node)

        def starts_branch(arg: ast.Expr) -> bool:
            if isinstance(arg, (ast.Identity, ast.Group)):
                return True
            name = arg.id if isinstance(arg, ast.Name) else getattr(arg, "name", None)
            if name is None or name in env.values or name in _CONSTANTS:
                return False
            return name in MERGES or lookup(name) is not None or bool(env.menv.lookup_block(name))

        gaps = []  # where each comma belongs: just after what precedes a branch
        for layer in layers:
            positional = {id(a) for a in layer.args}
            items = sorted(
                [*layer.args, *(v for _, v, _ in layer.kwargs)],
                key=lambda a: (a.span.line, a.span.column),
            )
            end = (layer.span.line, layer.span.column + len(layer.name))
            for item in items:
                if id(item) in positional and starts_branch(item):
                    gaps.append(end)
                end = (item.span.end_line, item.span.end_column)
        if not gaps or None in gaps[0]:
            return None
        line, column = gaps[0]
        hint = f"separate the branches with commas: {e.name}(a, b)"
        text = SourceSnapshot.of([e.span.file]).line(e.span.file, e.span.line)
        if text is not None and e.span.end_line == e.span.line and {g[0] for g in gaps} == {line}:
            call = text[: e.span.end_column - 1]
            for _, col in reversed(gaps):
                call = call[: col - 1] + "," + call[col - 1 :]
            hint = f"write `{call[e.span.column - 1 :]}`"
        return NetdslError(
            f"missing ',' between the branches of {e.name}",
            Span(e.span.file, line, column, line, column + 1),
            hint=hint,
        )

    def _layer(self, e: ast.Call, found, env: Env, ctx):
        spec, presets = found
        slots = [p for p in spec.positional if not (p in presets and p == spec.shorthand)]
        args = [(self._argument(a, spec.arg(n), env, ctx), a.span) for a, n in zip(e.args, slots)]
        args += [(self.eval(a, env, ctx), a.span) for a in e.args[len(slots) :]]
        kwargs = [(k, self._argument(v, spec.arg(k), env, ctx), s) for k, v, s in e.kwargs]
        # a size may be a named tensor's (`upsample size=img`): read when the layer is applied
        kwargs = [
            (k, TensorSize(v.name, ref=v), s)
            if isinstance(v, TensorRef)
            and getattr(spec.arg(k), "kind", None) in ("extent", "tensor")
            else (k, Tie(v.name, v.view.node), s)
            if isinstance(v, TensorRef) and getattr(spec.arg(k), "kind", None) == "tie"
            else (k, v, s)
            for k, v, s in kwargs
        ]
        for value, span in [*args, *((v, s) for _, v, s in kwargs)]:
            if isinstance(value, TensorRef):
                sized = any(a.kind in ("extent", "tensor") for a in spec.args)
                raise NetdslError(
                    f"'{value.name}' is a tensor, not an argument of {e.name}",
                    span,
                    hint=f"to take {value.name}'s height and width, write "
                    f"`{e.name} size={value.name}`"
                    if sized
                    else _TENSOR_SIZES,
                )
        defaults = {
            **self.network_defaults.get(spec.name, {}),
            **self._module_defaults(env.menv, ctx).get(spec.name, {}),
        }
        attrs = spec.bind(
            args, kwargs, e.span, presets=presets, defaults=defaults, called_as=e.name
        )
        if attrs.get("tie") is not None and "init" not in (k for k, _, _ in kwargs):
            attrs["init"] = None  # `defaults fc init=...` leaves a tied weight to its embedding
        return LayerFrag(spec, attrs, e.span, e.name)

    def _argument(self, expr, arg, env: Env, ctx):
        """A layer's argument. A name that nothing defines, where a number belongs, is
        taken for a number the network (or block) forgot to declare: `conv3 width`."""
        try:
            return self.eval(expr, env, ctx)
        except NetdslError as err:
            name = _bare_name_at(expr, err.span)
            if (
                arg is None
                or arg.kind in ("act", "mode")
                or name is None
                or err.message != f"unknown layer, block or name '{name}'"
            ):
                raise
            numbers = [n for n, v in env.values.items() if isinstance(v, (Num, Tup))]
            hint = did_you_mean(name, numbers) or self._undeclared(name, arg, env)
            raise NetdslError(err.message, err.span, hint=hint, notes=err.notes) from None

    def _undeclared(self, name: str, arg, env: Env) -> str | None:
        """How to declare `name` as a parameter of the network or block it is used in."""
        scope = env.owner
        while scope is not None and scope.kind not in ("network", "block"):
            scope = scope.parent
        if scope is None or scope.block is None:
            return None
        if scope.kind == "network":
            found = [n for n in env.menv.module.networks if n.name == scope.block]
            definition = found[0] if found else None
        else:
            found = env.menv.lookup_block(scope.block)
            definition = found[0] if found else None
        params = definition.params if definition is not None else ()
        example = {"prob": 0.5, "pad": 0}.get(arg.kind, {"c": 64, "n": 10, "k": 3}.get(arg.name, 1))
        return habits.parameter_hint(scope.kind, scope.block, params, name, example)

    def _module_defaults(self, menv: ModuleEnv, ctx) -> dict:
        if menv.defaults_cache is None:
            menv.defaults_cache = {}  # `defaults conv act=relu` reads relu: no defaults there
            menv.defaults_cache.update(
                self._defaults(menv.module.defaults, Env({}, menv, None, ctx.scope), ctx)
            )
        return menv.defaults_cache

    def _defaults(self, statements, env: Env, ctx, constant: bool = False) -> dict:
        """{layer: {argument: (value, span)}} of `defaults` statements. A network's are
        constants: the blocks they reach do not see the network's parameters."""
        table: dict = {}
        for d in statements:
            found = lookup(d.layer)
            if found is None:
                raise NetdslError(
                    f"defaults: unknown layer '{d.layer}'",
                    d.span,
                    hint=did_you_mean(d.layer, layer_names()),
                )
            spec = found[0]
            entry = table.setdefault(spec.name, {})
            for key, value, span in d.kwargs:
                arg = spec.arg(key)
                if arg is None:
                    raise NetdslError(
                        f"{spec.name} has no argument '{key}'",
                        span,
                        hint=did_you_mean(key, [a.name for a in spec.args]),
                    )
                value = self._argument(value, arg, env, ctx)
                entry[arg.name] = (_const(value) if constant else value, span)
        return table

    def _given(self, e: ast.Call, what: str, params, signature: str, env, ctx, convert=None):
        """The arguments a call of a block or function gives, checked against its
        parameters: {name: (value, span)}, positional ones first, in the call's order.
        `what` names the callee in messages (`block unit`); `convert(value, span)` checks
        or converts each value."""
        if len(e.args) > len(params):
            raise NetdslError(
                f"{what} takes {len(params)} argument{'s' if len(params) != 1 else ''} "
                f"but {len(e.args)} {'was' if len(e.args) == 1 else 'were'} given",
                e.args[len(params)].span,
                hint=f"its definition: {signature}",
            )
        names = [p.name for p in params]
        given: dict = {}
        arguments = [(p.name, a, a.span) for p, a in zip(params, e.args)]
        for key, vexpr, kspan in [*arguments, *e.kwargs]:
            if key not in names:
                raise NetdslError(
                    f"{what} has no parameter '{key}'",
                    kspan,
                    hint=did_you_mean(key, names) or f"its definition: {signature}",
                )
            if key in given:
                raise NetdslError(f"argument '{key}' given twice", kspan)
            value = self.eval(vexpr, env, ctx)
            given[key] = (convert(value, vexpr.span) if convert else value, vexpr.span)
        return given

    def _bind_block(self, e: ast.Call, bdef: ast.BlockDef, menv: ModuleEnv, env, ctx):
        params = bdef.params
        given = self._given(
            e, f"block {bdef.name}", params, _signature_text(bdef), env, ctx, self._block_arg
        )
        values = {name: _chosen_layer(value, env.owner) for name, (value, _) in given.items()}
        positional = len(e.args)
        call_args = [(None if i < positional else k, v) for i, (k, v) in enumerate(values.items())]
        deferred: set = set()
        for p in params:
            if p.name in values:
                continue
            if p.default is None:
                raise NetdslError(
                    f"block {bdef.name} needs argument '{p.name}'",
                    e.span,
                    hint=f"its definition: {_signature_text(bdef)}",
                )
            if _reads_input(p.default, deferred):
                deferred.add(p.name)  # `c=in.c // 4`: known once the block meets its input
                values[p.name] = _LATER
                continue
            default_env = Env(dict(values), menv, None, env.owner)
            values[p.name] = self.eval(p.default, default_env, ctx)
        ordered = {p.name: values[p.name] for p in params}
        return BlockFrag(bdef, menv, ordered, call_args, e.span)

    def _input_defaults(self, frag: BlockFrag, view: TensorView, ctx: Ctx) -> BlockFrag:
        """A call with defaults that read `in`, given the input it is applied to: the
        defaults evaluated in the caller's terms, as if the call had passed them."""
        values = dict(frag.values)
        owner = _owner(ctx.scope)
        for p in frag.definition.params:
            if values[p.name] is _LATER:
                known = {k: v for k, v in values.items() if v is not _LATER}
                values[p.name] = self.eval(p.default, Env(known, frag.menv, view, owner), ctx)
        return BlockFrag(frag.definition, frag.menv, values, frag.call_args, frag.span)

    def _block_arg(self, value, span):
        if isinstance(value, SeqFrag) and _starts_with_tensor(value):
            raise NetdslError(
                "a block argument that starts from a named tensor must be the name alone",
                span,
                hint="name the result first (`t = ...`) and pass the name; or pass the "
                "layers and apply them to the tensor inside the block",
            )
        return value

    def _eval_BinOp(self, e: ast.BinOp, env, ctx):
        # Long `a + b + c + ...` (or `1 - 2 * 3 - ...`) chains are evaluated as a loop over
        # the left spine, so depth stays small (the parser limits only the other nesting).
        operands = []
        node = e
        while isinstance(node, ast.BinOp):
            operands.append(node)
            node = node.left
        value = self.eval(node, env, ctx)
        built = None  # a sequence this loop made: extended in place, so long chains stay linear
        for op_node in reversed(operands):
            if op_node.op == "+" and isinstance(value, Fragment) and _reads_index(op_node.right):
                right = LazyFrag(op_node.right, env, ctx)
            else:
                right = self.eval(op_node.right, env, ctx)
            if (
                op_node.op == "*"
                and value is not built
                and isinstance(value, Fragment)
                and isinstance(op_node.left, ast.Group)
                and _reads_index(op_node.left)
            ):  # each repetition reads index(B) anew
                value = LazyFrag(op_node.left, env, ctx)
            if op_node.op == "+" and isinstance(right, Fragment) and value is not built:
                self._expect_tensor(op_node.left, value, env)
            if (
                built is not None
                and value is built
                and op_node.op == "+"
                and isinstance(right, Fragment)
                and not _starts_with_tensor(right)
            ):
                built.parts.extend(right.parts if isinstance(right, SeqFrag) else (right,))
                built.span = op_node.span
                continue
            value = self._combine(op_node, value, right)
            if isinstance(value, SeqFrag):
                built = value
        return value

    def _combine(self, e: ast.BinOp, a, b):
        op = e.op
        if isinstance(a, Num) and isinstance(b, Num):
            return self._arith(e, a, b)
        if isinstance(a, Fragment) and isinstance(b, Fragment) and op == "+":
            if _starts_with_tensor(b):
                raise NetdslError(
                    f"a named value can only start a sequence; what comes before "
                    f"'{b.name if isinstance(b, TensorRef) else b.parts[0].name}' would be lost",
                    e.right.span,
                    hint="use a merge such as add(...) or concat(...) to combine tensors",
                )
            parts = (a.parts if isinstance(a, SeqFrag) else [a]) + (
                b.parts if isinstance(b, SeqFrag) else [b]
            )
            return SeqFrag(parts, e.span)
        if op != "+" and (isinstance(a, TensorRef) or isinstance(b, TensorRef)):
            raise NetdslError(
                f"cannot apply '{op}' to {kind_of(a)} and {kind_of(b)}",
                e.op_span,
                hint=_TENSOR_SIZES,
            )
        if isinstance(a, Fragment) and isinstance(b, Num) and op == "*":
            if not isinstance(e.left, ast.Group):
                raise NetdslError(
                    "to repeat a layer, put it in brackets",
                    e.op_span,
                    hint=f"write [{_short(e.left)}]*{_short(e.right)}; to multiply a layer's "
                    f"argument, parenthesise it: conv3 (c*2)",
                )
            count = b
            if not isinstance(count.value, int) or isinstance(count.value, bool) or count.value < 0:
                raise NetdslError(
                    f"a repeat count must be a non-negative integer, got {count.value!r}",
                    e.right.span,
                )
            if count.value > self.limits.max_repeat:
                raise NetdslError(
                    f"repeat count {count.value} exceeds the limit of {self.limits.max_repeat}",
                    e.right.span,
                )
            return RepeatFrag(a, count, e.span)
        if isinstance(a, Num) and isinstance(b, Fragment) and op == "*":
            raise NetdslError("write the repeat count after the brackets: [layers]*n", e.span)
        hint = None
        block = next((v for v in (a, b) if isinstance(v, BlockFrag)), None)
        if block is not None and isinstance(a if block is b else b, Num):
            hint = block.number_hint
        elif isinstance(a, Fragment) and isinstance(b, Num):
            hint = (
                "arithmetic inside a layer's space-separated arguments needs parentheses, "
                "e.g. conv3 (c+1) or p=(k//2)"
            )
        elif isinstance(a, Num) and isinstance(b, Fragment) and op == "+":
            hint = "a number cannot start a sequence of layers"
        raise NetdslError(
            f"cannot apply '{op}' to {kind_of(a)} and {kind_of(b)}", e.op_span, hint=hint
        )

    def _arith(self, e: ast.BinOp, a: Num, b: Num) -> Num:
        self._number(a, e.left.span)
        self._number(b, e.right.span)
        if e.op in ("/", "//", "%") and b.value == 0:
            raise NetdslError(
                "division by zero",
                e.op_span,
                hint=f"the right operand evaluates to 0 ({e.right.span})",
            )
        if e.op == "**":
            self._check_power(a.value, b.value, e.span)
        try:
            result = a._binary(e.op, b)
        except OverflowError:
            raise NetdslError("number too large", e.span) from None
        self._check_number(result.value, e.span)
        return result

    def _check_power(self, base, exponent, span) -> None:
        """What Python's `**` would refuse, overflow on, or answer with a complex number."""
        if base == 0 and exponent < 0:
            raise NetdslError("0 cannot be raised to a negative power", span)
        if base < 0 and isinstance(exponent, float) and not exponent.is_integer():
            raise NetdslError("a negative number to a fractional power is not a real number", span)
        if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1:
            if exponent * math.log2(abs(base)) > 64:  # (before Python computes a huge int)
                raise NetdslError(f"number too large (limit {self.limits.max_int})", span)

    def _eval_Neg(self, e, env, ctx):
        value = self._number(self.eval(e.operand, env, ctx), e.operand.span)
        return -value

    def _eval_Compare(self, e, env, ctx):
        a, b = self.eval(e.left, env, ctx), self.eval(e.right, env, ctx)
        if isinstance(a, Num) and isinstance(b, Num):
            return num_compare(e.op, a, b)
        if e.op in ("==", "!=") and type(a) is type(b) and isinstance(a, (str, Tup)):
            same = (a == b) if isinstance(a, str) else (a.value == b.value)
            return Num(same if e.op == "==" else not same)
        raise NetdslError(f"cannot compare {kind_of(a)} with {kind_of(b)}", e.span)

    def _eval_BoolOp(self, e, env, ctx):
        a = self._bool(self.eval(e.left, env, ctx), e.left.span)
        short = (not a.value) if e.op == "and" else a.value
        if short and a.is_const:
            return a
        try:
            b = self._bool(self.eval(e.right, env, ctx), e.right.span)
        except NetdslError:
            if short:
                _freeze(env.owner, a.expr)
                return a.const()
            raise
        value = (a.value and b.value) if e.op == "and" else (a.value or b.value)
        if a.is_const:
            return b
        if b.is_const:
            if (e.op == "and") == b.value:
                return a
            return b
        from .symbolic import BoolOp as BoolExpr

        return Num(value, BoolExpr(e.op, a.expr, b.expr))

    def _eval_Not(self, e, env, ctx):
        a = self._bool(self.eval(e.operand, env, ctx), e.operand.span)
        from .symbolic import Not as NotExpr

        return Num(not a.value) if a.is_const else Num(not a.value, NotExpr(a.expr))

    def _eval_IfExpr(self, e, env, ctx):
        cond = self._bool(self.eval(e.cond, env, ctx), e.cond.span)
        chosen_ast, other_ast = (e.then, e.orelse) if cond.value else (e.orelse, e.then)
        chosen = self.eval(chosen_ast, env, ctx)
        if cond.is_const:
            return chosen
        if isinstance(chosen, Fragment):
            self._decides(env.owner, cond.expr)
            frag = CondFrag(cond, bool(cond.value), chosen, e.span)
            if is_layer_param(chosen) and _is_layer_word(other_ast):
                frag.other = self.eval(other_ast, env, ctx)  # `relu`: cheap and pure
            return frag
        if isinstance(chosen, Num):
            try:
                other = self.eval(other_ast, env, ctx)
            except NetdslError:
                other = None
            if not isinstance(other, Num):
                _freeze(env.owner, cond.expr, chosen.expr)
                return chosen.const()
            then, orelse = (chosen, other) if cond.value else (other, chosen)
            return Num(chosen.value, ifelse(cond.expr, then.expr, orelse.expr))
        if isinstance(chosen, (Tup, str)):
            _freeze(env.owner, cond.expr, *([chosen.expr] if isinstance(chosen, Tup) else []))
        return _const(chosen)

    def _eval_Label(self, e, env, ctx):
        body = self.eval(e.body, env, ctx)
        check_identifier(e.name, e.span, "label")
        if not isinstance(body, Fragment):
            raise NetdslError(f"only layers can be labelled, not {kind_of(body)}", e.body.span)
        return LabelFrag(body, e.name, e.span)

    def _eval_Annotated(self, e, env, ctx):
        body = self.eval(e.body, env, ctx)
        ann = e.annotation
        if not isinstance(body, Fragment):
            raise NetdslError(f"only layers can be placed, not {kind_of(body)}", e.body.span)
        if ann.name == "gpu":
            if len(ann.args) != 1:
                raise NetdslError("write @gpu(i) with the GPU's index", ann.span)
            index = self.eval(ann.args[0], env, ctx)
            if not (
                isinstance(index, Num)
                and isinstance(index.value, int)
                and not isinstance(index.value, bool)
                and 0 <= index.value < 1024
            ):
                raise NetdslError("@gpu takes a GPU index such as 0 or 1", ann.args[0].span)
            return PlaceFrag(body, f"cuda:{index.value}", e.span)
        if ann.name == "cpu" and not ann.args:
            return PlaceFrag(body, "cpu", e.span)
        if ann.name == "train":
            raise NetdslError("@train marks outputs: `output aux @train = ...`", ann.span)
        raise NetdslError(
            f"unknown annotation '@{ann.name}'",
            ann.span,
            hint=did_you_mean(ann.name, ["gpu", "cpu"]) or "placements are @gpu(i) and @cpu",
        )

    # -- checks -------------------------------------------------------------------

    def _number(self, value, span) -> Num:
        if not isinstance(value, Num) or isinstance(value.value, bool):
            raise NetdslError(
                f"expected a number, got {kind_of(value)}",
                span,
                hint=_TENSOR_SIZES
                if isinstance(value, TensorRef)
                else getattr(value, "number_hint", None),
            )
        return value

    def _bool(self, value, span) -> Num:
        if not isinstance(value, Num) or not isinstance(value.value, bool):
            raise NetdslError(
                f"expected true or false, got {kind_of(value)}",
                span,
                hint="write a comparison such as n > 0",
            )
        return value

    def _check_number(self, value, span) -> None:
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise NetdslError("number is not finite", span)
            if abs(value) > self.limits.max_int:
                raise NetdslError("number too large", span)
        elif isinstance(value, int) and abs(value) > self.limits.max_int:
            raise NetdslError(f"number too large (limit {self.limits.max_int})", span)

    def _check_size(self, dims, span) -> None:
        total = 1
        for d in dims:
            total *= int(d.value)
        if total > self.limits.max_elements:
            raise NetdslError(
                f"tensor of {fmt_shape(dims)} has {total} elements, more than the "
                f"limit of {self.limits.max_elements}",
                span,
            )

    # -- application ------------------------------------------------------------------

    def apply(self, frag: Fragment, view: TensorView, ctx: Ctx) -> TensorView:
        method = self._methods.get(type(frag))
        if method is None:
            method = self._methods[type(frag)] = getattr(self, "_apply_" + type(frag).__name__)
        return method(frag, view, ctx)

    def _node(
        self,
        op,
        attrs,
        inputs,
        in_shapes,
        shape,
        span,
        ctx: Ctx,
        params=0,
        macs=0,
        buffers=0,
        called_as=None,
    ) -> Node:
        self.node_count += 1
        if self.node_count > self.limits.max_nodes:
            raise NetdslError(
                f"the network has more than {self.limits.max_nodes} nodes (layers and merges)",
                span,
                hint="raise the limit with --max-nodes if this is intended",
            )
        node = Node(
            op,
            attrs,
            inputs,
            in_shapes,
            shape,
            span,
            ctx.scope,
            params,
            macs,
            buffers,
            ctx.device,
            called_as,
        )
        ctx.scope.children.append(node)
        return node

    def _apply_LayerFrag(self, frag: LayerFrag, view, ctx):
        attrs = dict(frag.attrs)
        act = attrs.pop("act", None)
        # a size taken from a named tensor: that tensor is the node's second input
        refs = []
        for key, value in attrs.items():
            if isinstance(value, TensorSize) and value.ref is not None:
                refs.append(self._read_tensor(value.ref, ctx))
                attrs[key] = TensorSize(value.name, refs[-1].shape)
        if frag.called_as == "conv" and len(view.shape) == 3:
            _check_conv_order(frag, attrs, tuple(d.value for d in view.shape))
        try:
            check_input(frag.spec, view.shape)
            inferred = frag.spec.infer(attrs, view.shape)
        except ShapeError as e:
            hint = e.hint
            if view.node.op == "input" and shape_kind(view.shape) == "tokens":
                n, d = (x.value for x in view.shape)
                if "image" in frag.spec.accepts:  # `input 3x32` meant as an image
                    hint = (
                        f"`input {n}x{d}` declares {n} tokens of {d}; an image is C x H x W, "
                        f"e.g. input {n}x{d}x{d}"
                    )
            raise self._channels_last(
                NetdslError(
                    e.message if e.shows_input else f"{e.message} (input {fmt_shape(view.shape)})",
                    frag.span,
                    hint=hint,
                )
            ) from None
        self._check_size(inferred.shape, frag.span)
        if inferred.params > self.limits.max_elements:  # its weights: a tensor, too
            raise NetdslError(
                f"{frag.called_as} has {inferred.params} parameters, more than the "
                f"limit of {self.limits.max_elements}",
                frag.span,
                hint="check the layer's sizes",
            )
        attrs.update(inferred.derived)
        node = self._node(
            frag.spec.name,
            attrs,
            [view.node, *(r.node for r in refs)],
            [view.shape, *(r.shape for r in refs)],
            inferred.shape,
            frag.span,
            ctx,
            inferred.params,
            inferred.macs,
            inferred.buffers,
            frag.called_as,
        )
        node.param = getattr(frag, "param", None)
        initializers.check(node, frag.span)
        out = TensorView(node, inferred.shape)
        if act is not None:
            out = self.apply(act, out, ctx)
        return out

    def _apply_LazyFrag(self, frag: LazyFrag, view, ctx):
        value = self.eval(frag.expr, frag.env, frag.ctx)
        if not isinstance(value, Fragment):
            raise NetdslError(
                f"expected layers here, got {kind_of(value)}",
                frag.span,
                hint=getattr(value, "number_hint", None),
            )
        return self.apply(value.constified() if frag.constant else value, view, ctx)

    def _apply_IdFrag(self, frag, view, ctx):
        if getattr(frag, "param", None):
            ctx.scope.passes.append((len(ctx.scope.children), frag.param, view.node, view.shape))
        return view

    def _apply_TensorRef(self, frag: TensorRef, view, ctx):
        return self._read_tensor(frag, ctx)

    def _read_tensor(self, ref: TensorRef, ctx) -> TensorView:
        """A named tensor as the scope being built sees it: from another scope (a repeat's
        iteration reading its block's value), it is external there, its shape constant."""
        scope = _owner(ctx.scope)
        if ref.owner is scope:
            return ref.view
        if ref.view.node not in scope.external:
            scope.external.append(ref.view.node)
        return TensorView(ref.view.node, tuple(d.const() for d in ref.view.shape))

    def _apply_SeqFrag(self, frag: SeqFrag, view, ctx):
        for part in frag.parts:
            view = self.apply(part, view, ctx)
        return view

    def _apply_MergeFrag(self, frag: MergeFrag, view, ctx):
        views = [self.apply(b, view, ctx) for b in frag.branches]
        shapes = [v.shape for v in views]
        try:
            shape, problem = merge_shape(frag.op, shapes)
        except ShapeError as e:
            raise self._channels_last(
                self._branch_notes(NetdslError(e.message, frag.span, hint=e.hint), frag, shapes)
            ) from None
        if problem:
            listing = " vs ".join(f"{fmt_shape(s)} (branch {i + 1})" for i, s in enumerate(shapes))
            raise self._channels_last(
                self._branch_notes(
                    NetdslError(
                        f"{frag.op}: branch shapes differ: {listing}",
                        frag.span,
                        hint=merge_mismatch_hint(frag.op, shapes),
                    ),
                    frag,
                    shapes,
                )
            )
        node = self._node(frag.op, {}, [v.node for v in views], shapes, shape, frag.span, ctx)
        return TensorView(node, shape)

    def _channels_last(self, error: NetdslError) -> NetdslError:
        """A shape error after an input written H x W x C (`input 224x224x3`): the input is
        the mistake, and the shape error follows from it."""
        if self.channels_last is None:
            return error
        stmt, c, h, w = self.channels_last
        name = f"{stmt.name} " if stmt.name else ""
        return NetdslError(
            f"this input looks like H x W x C ({h}x{w}x{c}): netdsl takes C x H x W",
            stmt.shape.span,
            hint=f"write `input {name}{c}x{h}x{w}`",
            notes=[Note(f"which leads to: {error.message}", error.span)],
        )

    def _branch_notes(self, error: NetdslError, frag: MergeFrag, shapes) -> NetdslError:
        for i, (span, s) in enumerate(zip(frag.branch_spans, shapes)):
            error.with_note(f"branch {i + 1} gives {fmt_shape(s)}", span)
        return error

    def _apply_LabelFrag(self, frag: LabelFrag, view, ctx):
        parent = ctx.scope
        group = Scope(
            kind="group",
            parent=parent,
            span=frag.span,
            label=frag.name,
            input=view.node,
            in_shape=view.shape,
            device=ctx.device,
        )
        parent.children.append(group)
        out = self.apply(frag.body, view, ctx.but(scope=group))
        group.output, group.out_shape = out.node, out.shape
        group.result_shape = out.shape
        if len(group.children) <= 1:
            parent.children.remove(group)
            if group.children:
                child = group.children[0]
                child.label = frag.name
                if isinstance(child, Scope):
                    child.parent = parent
                else:
                    child.scope = parent
                parent.children.append(child)
        return out

    def _apply_PlaceFrag(self, frag: PlaceFrag, view, ctx):
        return self.apply(frag.body, view, ctx.but(device=frag.device))

    def _apply_CondFrag(self, frag: CondFrag, view, ctx):
        scope = Scope(
            kind="cond",
            parent=ctx.scope,
            span=frag.span,
            cond=frag.cond,
            taken=frag.taken,
            input=view.node,
            in_shape=view.shape,
            device=ctx.device,
        )
        ctx.scope.children.append(scope)
        out = self.apply(frag.branch, view, ctx.but(scope=scope))
        scope.output, scope.out_shape = out.node, out.shape
        scope.result_shape = out.shape
        return out

    def _apply_RepeatFrag(self, frag: RepeatFrag, view, ctx):
        return self._repeat(frag, lambda i, ctx: frag.body, view, ctx)

    def _apply_IndexedRepeatFrag(self, frag: IndexedRepeatFrag, view, ctx):
        def body(i: int, inner_ctx: Ctx) -> Fragment:
            env = frag.env
            values = dict(env.values)
            # the index is a symbol (`#i`, not a DSL name), so iterations trace alike
            index = Num(frag.start.value + i, Sym("#" + frag.var))
            if frag.table is None:
                values[frag.var] = index
            else:  # a literal table's rows are constants (the emitters unroll the loop)
                row = frag.table.items[i]
                if not frag.table.is_const:
                    row = _traced(row, Index(frag.table.expr, index.expr))
                if len(frag.names) == 1 and not isinstance(row, Tup) or frag.names == (frag.var,):
                    values[frag.names[0]] = row
                else:
                    values.update(zip(frag.names, row.items))
            value = self.eval(frag.body, Env(values, env.menv, env.input, env.owner), inner_ctx)
            if not isinstance(value, Fragment):
                raise NetdslError(
                    f"the repeated body evaluates to {kind_of(value)}, not a network expression",
                    frag.body.span,
                )
            return value

        return self._repeat(
            frag, body, view, ctx, index=("#" + frag.var, frag.start, frag.start + frag.count)
        )

    def _repeat(self, frag, body_for, view, ctx, index=None):
        """Apply `body_for(i)` count times; iterations are scopes of their own."""
        scope = Scope(
            kind="repeat",
            parent=ctx.scope,
            span=frag.span,
            count=frag.count,
            input=view.node,
            in_shape=view.shape,
            device=ctx.device,
            index=index,
        )
        ctx.scope.children.append(scope)
        # Not a DSL identifier, so it cannot clash with a parameter; emitters rename it.
        channels = "@channels" if ctx.repeat_depth == 0 else f"@channels{ctx.repeat_depth + 1}"
        inner_ctx = ctx.but(repeat_depth=ctx.repeat_depth + 1)
        current = view
        outs = []
        for i in range(frag.count.value):
            it = Scope(
                kind="iteration",
                parent=scope,
                span=frag.span,
                name=str(i),
                input=current.node,
                in_shape=current.shape,
                device=ctx.device,
            )
            scope.children.append(it)
            inner = TensorView(current.node, _rebase(current.shape, channels))
            it_ctx = inner_ctx.but(scope=it)
            out = self.apply(body_for(i, it_ctx), inner, it_ctx)
            it.output, it.out_shape = out.node, out.shape
            outs.append(channels_of(out.shape).expr)
            current = TensorView(
                out.node,
                _lift(out.shape, {channels: channels_of(current.shape).expr}, keep_unmapped=True),
            )
            it.result_shape = current.shape
        owner = _owner(ctx.scope)
        self._decides(owner, frag.count.expr)
        for it in scope.children:  # what iterations had to write as constants, so must we
            owner.frozen |= {s for s in it.frozen if s[0] not in "@#"}
            self._decides(owner, *self.structural.pop(id(it), ()))
        if outs:
            closed = _repeat_closed_form(outs, channels, channels_of(view.shape).expr, frag.count)
            if closed is not None and index is not None and index[0] in closed.symbols:
                # channels set by the last iteration alone: the index is then stop - 1
                closed = (
                    closed.subst({index[0]: (index[2] - 1).expr})
                    if channels not in outs[0].symbols
                    else None
                )
            if closed is None:
                c = channels_of(current.shape).const()
                _freeze(owner, frag.count.expr, *outs)
            else:
                c = Num(channels_of(current.shape).value, closed)
            current = TensorView(current.node, with_channels(current.shape, c))
        scope.output, scope.out_shape = current.node, current.shape
        scope.result_shape = current.shape
        return current

    def _apply_BlockFrag(self, frag: BlockFrag, view, ctx):
        bdef = frag.definition
        if any(v is _LATER for v in frag.values.values()):
            frag = self._input_defaults(frag, view, ctx)
        if ctx.depth >= self.limits.max_block_depth:
            chain = " -> ".join(name for name, _ in ctx.stack[-4:])
            raise NetdslError(
                f"blocks nest more than {self.limits.max_block_depth} deep ({chain} -> ...)",
                frag.span,
                hint=f"does {bdef.name} have a base case that ends its recursion?",
            )
        scope = Scope(
            kind="block",
            parent=ctx.scope,
            span=frag.span,
            block=bdef.name,
            args=frag.values,
            call_args=frag.call_args,
            input=view.node,
            in_shape=view.shape,
            device=ctx.device,
        )
        ctx.scope.children.append(scope)
        self.positions[id(scope)] = self.made.get(bdef, 0)
        self.made[bdef] = self.made.get(bdef, 0) + 1
        values = {}
        tensors: dict = {}  # channel symbol -> the tensor's channels in the caller's terms
        scope.args = dict(frag.values)  # (a tensor's entry becomes its TensorArg)
        for name, v in frag.values.items():
            if not isinstance(v, TensorRef):
                values[name] = self._symbolize(name, v, frag.span, _owner(ctx.scope))
                continue
            outer = self._read_tensor(v, ctx)  # (an iteration records it as external)
            symbol = _tensor_symbol(bdef, name)
            scope.args[name] = TensorArg(v.name, outer.node, outer.shape, symbol)
            if outer.node not in scope.external:
                scope.external.append(outer.node)
            inner = TensorView(outer.node, _rebase(outer.shape, symbol))
            values[name] = TensorRef(inner, name, scope, v.span)
            tensors[symbol] = channels_of(outer.shape).expr
        if tensors:
            scope.call_args = [
                (k, scope.args[k or list(frag.values)[i]] if isinstance(a, TensorRef) else a)
                for i, (k, a) in enumerate(frag.call_args)
            ]
        inner_view = TensorView(view.node, _rebase(view.shape, "in_channels"))
        env = Env(values, frag.menv, inner_view, scope)
        inner_ctx = ctx.but(
            scope=scope,
            depth=ctx.depth + 1,
            repeat_depth=0,
            stack=ctx.stack + ((bdef.name, frag.span),),
        )
        self._signature(bdef, frag, inner_view)
        try:
            if isinstance(bdef.body, tuple):
                out = self._exec(bdef.body, env, inner_ctx, inner_view, None)
            else:
                body = self.eval(bdef.body, env, inner_ctx)
                if not isinstance(body, Fragment):
                    raise NetdslError(
                        f"block {bdef.name} evaluates to {kind_of(body)}, not a network expression",
                        bdef.body.span,
                    )
                out = self.apply(body, inner_view, inner_ctx)
        except NetdslError as e:
            _note_call(e, bdef.name, frag.span)
            raise
        except RecursionError:  # nesting within each block level, times many levels
            raise NetdslError(
                f"block {bdef.name} nests too deeply to elaborate",
                frag.span,
                hint="flatten nested repeats or brackets inside it",
            ) from None
        scope.output, scope.out_shape = out.node, out.shape
        mapping = {"in_channels": channels_of(view.shape).expr, **tensors}
        for name, v in frag.values.items():
            if isinstance(v, (Num, Tup)):
                mapping[name] = v.expr
        caller = _owner(ctx.scope)
        lost = scope.frozen | (
            channels_of(out.shape).expr.symbols - mapping.keys()
            and channels_of(out.shape).expr.symbols
        )
        _freeze(caller, *(mapping[s] for s in lost if s in mapping))
        decided = self.structural.pop(id(scope), ())
        self._decides(caller, *(mapping[s] for s in decided if s in mapping))
        result = TensorView(out.node, _lift(out.shape, mapping))
        scope.result_shape = result.shape
        return result

    def _decides(self, owner: Scope | None, *exprs) -> None:
        """Record symbols that decide the network's structure (how often a block is used)."""
        if owner is not None and exprs:
            found = self.structural.setdefault(id(owner), set())
            for e in exprs:
                found.update(e.symbols if hasattr(e, "symbols") else (e,))

    def _symbolize(self, name: str, value, span, caller: Scope | None = None):
        if isinstance(value, Num):
            return Num(value.value, Sym(name))
        if isinstance(value, Tup):
            return _traced(value, Sym(name))
        if isinstance(value, Fragment):
            if caller is not None:  # a layer argument is baked into the class as constants
                _freeze(caller, *_fragment_exprs(value))
            value = value.constified()
            if is_layer_param(value):  # an activation (or id): marked as this parameter's
                value = copy.copy(value)
                value.param = name
            return value
        return value

    def _signature(self, bdef: ast.BlockDef, frag: BlockFrag, inner: TensorView) -> None:
        if bdef.name in self.signatures:
            return
        values: dict = {}
        params = []
        for p in bdef.params:
            check_identifier(p.name, p.span, "parameter")
            default = None
            if p.default is not None:
                try:
                    default = self.eval(
                        p.default,
                        Env(dict(values), frag.menv, inner, None),  # in.c: in_channels
                        Ctx(Scope("block", None, p.span)),
                    )
                except NetdslError:
                    if isinstance(p.default, ast.Number):  # wrong wherever it is used
                        raise
                    default = None
            params.append((p.name, default))
            values[p.name] = self._symbolize(p.name, frag.values[p.name], p.span)
        check_identifier(bdef.name, bdef.name_span, "block")
        if lookup(bdef.name) is not None or bdef.name in MERGES:
            raise NetdslError(
                f"block '{bdef.name}' would hide the built-in layer of that name",
                bdef.name_span,
                hint="choose another name",
            )
        self.signatures[bdef.name] = BlockSignature(
            bdef.name, params, self.sources.text(bdef.span).strip(), bdef.span
        )


class _NetworkState:
    def __init__(self) -> None:
        self.inputs: dict[str, Node] = {}
        self.outputs: list[Output] = []
        self.current: TensorView | None = None


# ---- helpers -------------------------------------------------------------------


def _bare_name_at(expr, span: Span | None) -> str | None:
    """The bare name (`width`) at `span` among the operands of an arithmetic argument
    (walked without recursion: a mutated program may nest thousands deep)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, ast.Name) and e.span == span:
            return e.id
        if isinstance(e, ast.Call) and not (e.args or e.kwargs or e.parenthesised):
            if e.span == span:
                return e.name
        elif isinstance(e, ast.BinOp):
            stack += (e.right, e.left)
        elif isinstance(e, ast.Neg):
            stack.append(e.operand)
        elif isinstance(e, ast.Tuple):
            stack += reversed(e.items)
    return None


def _check_conv_order(frag: LayerFrag, attrs: dict, shape: tuple) -> None:
    """`conv(3, 64)` on a 3-channel input: PyTorch's (in_channels, out_channels), which
    netdsl reads as 3 output channels and a 64 x 64 kernel."""
    c, k = attrs["c"].value, attrs["k"]
    kernel = tuple(d.value for d in k.items) if isinstance(k, Tup) else (k.value, k.value)
    groups = attrs["g"].value if isinstance(attrs.get("g"), Num) else 1
    if groups != 1 or not habits.conv_in_channels_first(c, kernel, shape):
        return
    raise NetdslError(
        f"conv: {c} output channels with a {kernel[0]}x{kernel[1]} kernel: netdsl's conv "
        "takes (c, k), not PyTorch's (in_channels, out_channels)",
        frag.span,
        hint=habits.conv_order_hint("conv", Num(kernel[0]), None),
    )


def _override_value(value):
    """A parameter override from Python (`params={"classes": 10}`) as a DSL value."""
    if isinstance(value, (bool, int, float)):
        return Num(value)
    if isinstance(value, (tuple, list)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return Tup(Num(v) for v in value)
    return value


def _traced(value, expr):
    """`value` (a Num or a Tup of them, nested) computed by `expr`: a tuple's items by
    `expr[0]`, `expr[1]`, ..."""
    if isinstance(value, Num):
        return Num(value.value, expr)
    return Tup([_traced(item, Index(expr, i)) for i, item in enumerate(value.items)], expr)


def _freeze(owner: Scope | None, *exprs) -> None:
    """Record that these expressions' symbols were written as constants in `owner`: the
    generated class cannot follow those parameters (see Network.frozen_params)."""
    if owner is None:
        return
    for e in exprs:
        if e is not None:
            owner.frozen |= {s for s in e.symbols if s[0] not in "@#"}


def _fragment_exprs(frag) -> list:
    """The traced expressions inside an unapplied fragment."""
    out: list = []
    stack = [frag]
    while stack:
        item = stack.pop()
        if isinstance(item, (Num, Tup)):
            out.append(item.expr)
        elif isinstance(item, LayerFrag):
            stack.extend(item.attrs.values())
        elif isinstance(item, BlockFrag):
            stack.extend(item.values.values())
        elif isinstance(item, SeqFrag):
            stack.extend(item.parts)
        elif isinstance(item, MergeFrag):
            stack.extend(item.branches)
        elif isinstance(item, RepeatFrag):
            stack.extend((item.body, item.count))
        elif isinstance(item, (LabelFrag, PlaceFrag)):
            stack.append(item.body)
        elif isinstance(item, CondFrag):
            stack.extend((item.cond, item.branch))
        elif isinstance(item, IndexedRepeatFrag):
            stack.extend((item.start, item.count))
    return out


def _tensor_symbol(bdef: ast.BlockDef, name: str) -> str:
    """The symbol of a tensor parameter's channels inside its block (`prev_channels`): a
    name none of the block's parameters has, the generated class's parameter."""
    taken = {p.name for p in bdef.params}
    symbol = f"{name}_channels"
    while symbol in taken:
        symbol += "_"
    return symbol


def _rebase(shape: tuple, symbol: str) -> tuple:
    """The shape as seen from inside a new scope: channels become a symbol."""
    return with_channels(_fixed(shape), Num(channels_of(shape).value, Sym(symbol)))


def _lift(shape: tuple, mapping: dict, keep_unmapped: bool = False) -> tuple:
    """A scope's output shape in its parent's terms."""
    c = channels_of(shape)
    if keep_unmapped or c.expr.symbols <= mapping.keys():
        c = Num(c.value, c.expr.subst(mapping))
    else:
        c = c.const()
    return with_channels(_fixed(shape), c)


def _fixed(shape: tuple) -> tuple:
    """Every dimension a constant (token ids keep their vocabulary)."""
    fixed = [d.const() for d in shape]
    return TokenIds(fixed, shape.vocab) if isinstance(shape, TokenIds) else tuple(fixed)


def _repeat_closed_form(outs: list, channels: str, in_expr, count: Num):
    """Channels after `[body]*n` in closed form, when the body's effect is regular."""
    first = outs[0]
    if any(o != first for o in outs):
        return None
    if first == Sym(channels):  # the body keeps the channel count
        return in_expr
    if channels not in first.symbols:
        if count.is_const or first == in_expr:
            return first
        return ifelse(compare(">", count.expr, Const(0)), first, in_expr)
    if (
        isinstance(first, Bin)
        and first.op == "+"
        and first.left == Sym(channels)
        and channels not in first.right.symbols
    ):
        # (expressions, not Nums with placeholder values: Num folds constants by value)
        return binary("+", in_expr, binary("*", count.expr, first.right))
    return None


def _note_call(error: NetdslError, block: str, span: Span, what: str = "block") -> None:
    """Add 'in block f, used here' to an error, folding runs of the same call."""
    message = f"in {what} {block}, used here"
    last = error.notes[-1] if error.notes else None
    if last is not None and last.span == span and last.message == message:
        last.times += 1
    elif len(error.notes) < 8:
        error.with_note(message, span)


def _starts_with_tensor(frag) -> bool:
    """A named tensor, or a sequence that starts with one (it cannot follow other layers)."""
    return isinstance(frag, TensorRef) or (
        isinstance(frag, SeqFrag) and isinstance(frag.parts[0], TensorRef)
    )


def _starts_with_ref(frag) -> bool:
    if isinstance(frag, TensorRef):
        return True
    if isinstance(frag, SeqFrag):
        return isinstance(frag.parts[0], TensorRef)
    if isinstance(frag, MergeFrag):
        return all(_starts_with_ref(b) for b in frag.branches)
    return False


def _short(e: ast.Expr) -> str:
    from .errors import SourceRegistry

    span = e.span
    line = SourceRegistry.line(span.file, span.line)
    if line and span.end_line == span.line and span.end_column:
        return line[span.column - 1 : span.end_column - 1]
    return "..."


def _module_files(menv: ModuleEnv) -> list[str]:
    """The paths of a file and of every file it uses, directly or not."""
    seen: dict[int, ModuleEnv] = {}
    stack = [menv]
    while stack:
        env = stack.pop()
        if id(env) not in seen:
            seen[id(env)] = env
            stack.extend(used for _, used in env.imported.values())
    return [env.path for env in seen.values()]


def _signature_text(bdef: ast.BlockDef | ast.FunctionDef, what: str = "block") -> str:
    params = ", ".join(
        p.name if p.default is None else f"{p.name}={_short(p.default)}" for p in bdef.params
    )
    return f"{what} {bdef.name}({params})"


# how many arguments each built-in function takes: (least, most), None for no limit
_ARITY = {"min": (2, None), "max": (2, None), "pow": (2, 2), "log": (1, 2)}


# ---- naming and the graph ---------------------------------------------------------------


def _base_name(item) -> str:
    if isinstance(item, Node) and item.param:  # a layer parameter's value: `act`
        return item.param
    if isinstance(item, Node):
        return item.op
    if item.kind == "block":
        return item.block
    if item.kind == "repeat":
        first = item.children[0] if item.children else None
        inner = first.children[0] if first is not None and first.children else None
        return (_base_name(inner) + "s") if inner is not None else "repeat"
    if item.kind == "cond":
        return "choice"
    return "group"


def assign_names(scope: Scope) -> None:
    """Give every node and scope a local name and a dotted id, torchvision style."""
    if scope.kind == "repeat":
        for i, it in enumerate(scope.children):
            it.name = str(i)
            it.id = f"{scope.id}.{i}" if scope.id else str(i)
            if len(it.children) == 1 and not it.children[0].label:
                # `[bottleneck(c)]*n`: the block instance *is* the iteration, as in nn.Sequential
                only = it.children[0]
                only.name, only.id = it.name, it.id
                if isinstance(only, Scope):
                    assign_names(only)
            else:
                assign_names(it)
        return
    taken = {c.label for c in scope.children if c.label}
    counts: dict[str, int] = {}
    for child in scope.children:
        if not child.label:
            base = _base_name(child)
            counts[base] = counts.get(base, 0) + 1
    seen: dict[str, int] = {}
    for child in scope.children:
        if child.label:
            name = child.label
            if seen.get(name):
                raise NetdslError(f"label '{name}' is used twice in the same block", child.span)
            seen[name] = 1
        else:
            base = _base_name(child)
            if counts[base] == 1 and base not in taken:
                name = base
            else:
                index = seen.get(base, 0) + 1
                while f"{base}{index}" in taken:
                    index += 1
                seen[base] = index
                name = f"{base}{index}"
            taken.add(name)
        child.name = name
        child.id = f"{scope.id}.{name}" if scope.id else name
        if isinstance(child, Scope):
            assign_names(child)


def _finish(root: Scope, outputs: list[Output]) -> list[Node]:
    """Name everything, mark the train-only nodes; returns the nodes in DSL order."""
    assign_names(root)
    nodes = list(root.nodes())

    def reached(outs) -> set:
        found: set = set()
        stack = [o.node for o in outs]
        while stack:
            node = stack.pop()
            if id(node) not in found:
                found.add(id(node))
                stack.extend(node.inputs)
        return found

    eval_nodes = reached(o for o in outputs if not o.train_only)
    live = reached(outputs) if len(eval_nodes) < len(nodes) else eval_nodes
    for node in nodes:
        if id(node) not in live and node.op != "input":
            # e.g. layers after the last `output`: no backend could build them faithfully
            raise NetdslError(
                f"'{node.called_as}' computes a value that no output uses",
                node.span,
                hint="with `output` lines the network's outputs are those alone; make this "
                "an output (`output name = ...`) or remove it",
            )
        node.train_only = id(node) not in eval_nodes
    return nodes


# ---- functions in generated code ---------------------------------------------------


def function_code(fdef: ast.FunctionDef, defaults: dict) -> NumericFunction:
    """The function for generated code, with the functions it calls. The body is
    translated from the DSL text (not from one call's trace), so every call computes alike;
    the operators and functions mean in Python what they mean in the DSL."""
    from . import symbolic as sym

    params = {p.name for p in fdef.params}
    callees: set = set()

    def tr(e) -> sym.Expr:
        if isinstance(e, (ast.Number, ast.Bool)):
            return sym.Const(e.value)
        if isinstance(e, ast.Name) and e.id in params:
            return Sym(e.id)
        if isinstance(e, ast.BinOp):
            return sym.Bin(e.op, tr(e.left), tr(e.right))
        if isinstance(e, ast.Neg):
            return sym.Neg(tr(e.operand))
        if isinstance(e, ast.Compare):
            return sym.Cmp(e.op, tr(e.left), tr(e.right))
        if isinstance(e, ast.BoolOp):
            return sym.BoolOp(e.op, tr(e.left), tr(e.right))
        if isinstance(e, ast.Not):
            return sym.Not(tr(e.operand))
        if isinstance(e, ast.IfExpr):
            return sym.IfElse(tr(e.cond), tr(e.then), tr(e.orelse))
        if isinstance(e, ast.Tuple):
            return sym.TupleExpr(tuple(tr(i) for i in e.items))
        if isinstance(e, ast.Index):
            return sym.Index(tr(e.base), tr(e.index))
        if isinstance(e, ast.Call) and not e.kwargs:
            args = tuple(tr(a) for a in e.args)
            if e.name in FUNCTIONS:
                return sym.func(e.name, args)
            callees.add(e.name)
            return UserCall(e.name, args)
        if isinstance(e, ast.Call):  # keywords: as written
            callees.add(e.name)
            text = ", ".join(
                [tr(a).render() for a in e.args] + [f"{k}={tr(v).render()}" for k, v, _ in e.kwargs]
            )
            return Sym(f"{e.name}({text})")
        raise NetdslError(
            "a function computes with numbers, tuples and functions only",
            e.span,
            hint="layers, tensors and `in` belong in blocks",
        )

    body = tr(fdef.body)
    signature = tuple(
        p.name if p.name not in defaults else f"{p.name}={defaults[p.name]!r}" for p in fdef.params
    )
    return NumericFunction(fdef.name, signature, body, frozenset(callees))
