"""The target-independent code model that every emitter renders.

From the elaborated scope tree it builds one `ClassModel` per block definition
(torchvision's "one class per block"), plus the network class. Each class is
a list of `Unit`s in DSL order: the submodules its constructor creates and,
in the same order, the data flow its forward pass follows.

Instances of a block share a class when their traced structure is the same:
every attribute is an expression in the block's parameters (`c * 4`), so the
class is parameterised the way the DSL block is. Conditionals whose branches
differ between instances (a ResNet shortcut that is `id` in one bottleneck and
a projection in another) merge into one class with both branches, wherever the
conditional stands (first in an `add` too: instances are rewired alike, and
expressions compared where the taken branches' conditions hold). Instances
that still differ (e.g. a block that branches on `in.h`) become variants:
`Block`, `Block2`.

Emitters subclass `Emitter`, fill its op tables (LAYERS, MERGES, UNSUPPORTED) and render
a `Program`.
"""

from __future__ import annotations

import copy
import importlib
import itertools
import keyword
import re
import textwrap
from dataclasses import dataclass, field

from .. import __version__
from ..elaborate import is_layer_param
from ..errors import NetdslError
from ..initializers import Init
from ..ir import Network, Node, NumericFunction, Scope, TensorArg
from ..layers import FRESH, MERGES, fmt_shape, traits
from ..names import class_name
from ..resources import helper_names
from ..symbolic import BoolOp, Cmp, Const, Expr, Local, Not, Num, Sym, Tup, channels_of
from . import format as fmt
from .pretrained import runtime_names
from .templates import render

# ---- the model ---------------------------------------------------------------


@dataclass(eq=False)
class Param:
    name: str  # the Python name
    default: object = None  # a Python literal, or None when required
    required: bool = True
    computed: Expr | None = None  # default that depends on earlier parameters
    symbol: str = ""  # the symbol it binds, when that differs from `name` (anonymous classes)
    value: object = None  # the first instance's value, for type hints
    tensor: str = ""  # the channels of this forward input (a tensor parameter's), if any
    layer: bool = False  # a layer-valued parameter (`act_layer`); `default` is its fragment


class LayerArg(Expr):
    """A layer passed to a block's class: the caller's own layer parameter (`param`, its
    Python name in the caller), or a layer written at the call (`frag`, which emitters
    spell as a constructor: `nn.Hardswish`, `partial(nn.LeakyReLU, 0.2)`)."""

    __slots__ = ("frag", "param", "__dict__")

    def __init__(self, frag, param: str | None) -> None:
        self.frag, self.param = frag, param

    @property
    def choice(self):
        """(condition, layer if true, layer if false) where the call chooses, else None."""
        return None if self.param else getattr(self.frag, "choice", None)

    def _render(self) -> str:  # what two calls compare (emitters spell it themselves)
        if self.param:
            return f"<layer {self.param}>"
        if self.choice:
            cond, then, orelse = self.choice
            return f"<layer {layer_text(then)} if {cond.render()} else {layer_text(orelse)}>"
        return f"<layer {layer_text(self.frag)}>"

    @property
    def symbols(self) -> frozenset:
        return self.choice[0].symbols if self.choice else frozenset()

    def subst(self, mapping: dict) -> LayerArg:
        if not self.choice:
            return self
        cond, then, orelse = self.choice
        frag = copy.copy(self.frag)
        frag.choice = (cond.subst(mapping), then, orelse)
        return LayerArg(frag, self.param)


def layer_text(frag) -> str:
    """A layer value as DSL text, for comparing (`leaky_relu slope=0.2`, `id`)."""
    spec = getattr(frag, "spec", None)
    if spec is None:
        return "id"
    attrs = " ".join(f"{k}={render_expr(v)}" for k, v in sorted(frag.attrs.items()))
    return f"{spec.name} {attrs}".strip()


def layer_node(frag) -> Node | None:
    """A stand-in node for a layer value (None for `id`): what the op tables render."""
    spec = getattr(frag, "spec", None)
    if spec is None:
        return None
    return Node(spec.name, dict(frag.attrs), [], [], (), frag.span, None)


@dataclass(eq=False)
class Unit:
    """One submodule of a class and its place in the forward pass.

    kind: "layer" (a catalogue op), "merge" (concat/add/mul/mean), "call"
    (an instance of another class), "repeat", "cond" or "module" (a labelled
    group, rendered as one module).
    """

    kind: str
    attr: str
    node: Node | None = None  # layer, merge: the representative node
    scope: Scope | None = None  # call, repeat, cond, module
    cls: ClassModel | None = None  # call: the class it instantiates
    args: list = field(default_factory=list)  # call: [(keyword or None, Expr)]
    count: Expr | None = None  # repeat: how many times
    init: Expr | None = None  # repeat: channels entering the first iteration
    update: Expr | None = None  # repeat: channels after an iteration, in terms of `loop_var`
    loop_var: str = ""  # repeat: the symbol of the iteration's input channels
    index: tuple | None = None  # repeat: (index symbol "#i", start Expr, stop Expr) or None
    body: Body | None = None  # repeat: one iteration (None when count was 0)
    cond: Expr | None = None  # cond
    branches: dict = field(default_factory=dict)  # cond: {True/False: Body}
    # forward
    inputs: list = field(default_factory=list)  # variable names
    output: str = ""
    shapes: list = field(default_factory=list)  # output shape of each instance (tuples of Num)
    # (IR node or scope, scope of its class instance) for every instance this unit stands
    # for: the nodes one line of generated code makes (absorbed as classes merge)
    items: list = field(default_factory=list)
    # train_only: a train-time-only part of this class (e.g. an aux head in the network);
    # the units inside a train-only part are not marked again
    train_only: bool = False
    device: str | None = None  # where it runs ("cuda:1", "cpu"; None: not placed anywhere)
    placed: bool = False  # its device is its own annotation, not inherited from the class
    overwrites: bool = False  # its input value is dead afterwards and was made in this class
    # a layer that is the value of the block's layer parameter `param` (`self.act`); with
    # `passes`, that value is `id` here: the unit passes its input on (its node a stand-in)
    param: str = ""
    passes: bool = False

    def key(self) -> tuple:
        base = (
            self.kind,
            self.attr,
            tuple(self.inputs),
            self.output,
            self.device if self.placed else None,
            self.train_only,
        )
        if self.param:  # whichever layer the parameter holds
            return base + ("param", self.param)
        if self.kind == "layer":  # the input's channels size the weights (not an attribute)
            channels = tuple(
                render_expr(channels_of(shape)) if shape else None for shape in self.node.in_shapes
            )
            return base + (self.node.op, _attrs_key(self.node), channels)
        if self.kind == "merge":
            return base + (self.node.op, _attrs_key(self.node))
        if self.kind == "call":
            return base + (id(self.cls), tuple((k, render_expr(v)) for k, v in self.args))
        if self.kind == "repeat":
            index = (
                (self.index[0], render_expr(self.index[1]), render_expr(self.index[2]))
                if self.index
                else None
            )
            return base + (
                render_expr(self.count),
                render_expr(self.init),
                render_expr(self.update),
                self.loop_var,
                index,
                self.body.key() if self.body else None,
            )
        if self.kind == "cond":
            return base + (render_expr(self.cond),)  # branches are merged, not compared
        if self.kind == "module":
            return base + (self.body.key(),)
        raise AssertionError(self.kind)


@dataclass(eq=False)
class Body:
    """The content of a repeat iteration, a conditional branch or a labelled group.

    Rendered as one module: `identity` (nothing), `single` (one unit),
    `chain` (units one after another: a Sequential), or `class` (anything
    else: an instance of an anonymous class).
    """

    kind: str  # identity | single | chain | class
    units: list = field(default_factory=list)  # single/chain
    cls: ClassModel | None = None  # class
    args: list = field(default_factory=list)  # class: [(keyword or None, Expr)]

    def key(self) -> tuple:
        if self.kind == "class":
            return ("class", id(self.cls), tuple((k, render_expr(v)) for k, v in self.args))
        return (self.kind, tuple(u.key() for u in self.units))


@dataclass(eq=False)
class ClassModel:
    name: str
    block: str | None  # the DSL block it implements; None for the network and anonymous classes
    kind: str  # "block" | "network" | "anonymous"
    params: list[Param]
    units: list[Unit]
    inputs: list[str]  # forward arguments
    outputs: list[tuple[str, str, bool]]  # (output name, variable, train_only)
    locals: list[tuple[str, Expr]] = field(default_factory=list)  # `n = (depth - 2) // 6`
    uses_in_channels: bool = True
    renames: dict = field(default_factory=dict)  # symbol -> Python name inside this class
    doc: str = ""
    instances: int = 1
    in_shapes: list = field(default_factory=list)
    fresh_output: bool = False  # returns a tensor it created (never an alias of its input)
    # the units' keys, computed once: a class absorbs every later instance of its block,
    # and comparing keys is most of the work (see unit_keys)
    _unit_keys: list | None = field(default=None, repr=False)
    _wiring: _Wiring | None = field(default=None, repr=False)  # see ModelBuilder._wire
    # for each instance: the equalities its conditionals' taken branches rely on
    _facts: list = field(default_factory=list, repr=False)

    def unit_keys(self) -> list:
        if self._unit_keys is None:
            self._unit_keys = [u.key() for u in self.units]
        return self._unit_keys

    def key(self) -> tuple:
        return (
            self.kind,
            self.block,
            tuple(self.unit_keys()),
            tuple(self.inputs),
            tuple(self.outputs),
            tuple((n, render_expr(e)) for n, e in self.locals),
        )

    def merge(self, other: ClassModel) -> bool:
        """Absorb `other` (an instance of the same block) if their structure agrees."""
        if (
            len(self.units) != len(other.units)
            or self.inputs != other.inputs
            or self.outputs != other.outputs
            or self.unit_keys() != other.unit_keys()
        ):
            return False
        return self.absorb(other)

    def absorb(self, other: ClassModel) -> bool:
        """Absorb `other`, whose units are known to correspond to these one to one (and to
        compute what these compute), unless a conditional took the same branch in both
        with different content."""
        merged = []
        for a, b in zip(self.units, other.units):
            if a.kind == "cond":
                for taken, body in b.branches.items():
                    if taken in a.branches and a.branches[taken].key() != body.key():
                        return False
            if a.kind == "repeat" and a.body is None and b.body is not None:
                merged.append((a, b))
            if a.kind == "cond":
                merged.append((a, b))
        for a, b in merged:
            if a.kind == "repeat":
                a.body = b.body
                self._unit_keys = None  # the body is part of a repeat's key
            else:
                for taken, body in b.branches.items():
                    a.branches.setdefault(taken, body)
        for a, b in zip(self.units, other.units):
            a.shapes.extend(b.shapes)
            _absorb_items(a, b)
        self.instances += other.instances
        self.in_shapes.extend(other.in_shapes)
        return True


def _absorb_items(a: Unit, b: Unit) -> None:
    """`a` now also stands for the instances `b` stood for (and so do the units of their
    bodies, where `a` did not simply take `b`'s body)."""
    a.items.extend(b.items)
    if a.kind == "cond":
        for taken, body in b.branches.items():
            if a.branches.get(taken) is not body:
                _absorb_body(a.branches[taken], body)
    elif a.kind in ("repeat", "module") and a.body is not None and b.body is not None:
        if a.body is not b.body:
            _absorb_body(a.body, b.body)


def _absorb_body(a: Body, b: Body) -> None:
    if a.kind in ("single", "chain") and a.kind == b.kind:
        for x, y in zip(a.units, b.units):
            _absorb_items(x, y)


def _reown(units: list[Unit], owner: Scope) -> None:
    """Units (and those of their bodies) whose class instance is `owner`."""
    for unit in units:
        unit.items = [(item, owner) for item, _ in unit.items]
        bodies = list(unit.branches.values()) if unit.kind == "cond" else [unit.body]
        for body in bodies:
            if body is not None and body.kind in ("single", "chain"):
                _reown(body.units, owner)


@dataclass(eq=False)
class Program:
    network: Network
    classes: list[ClassModel]  # dependencies first, the network class last
    main: ClassModel


def render_expr(e) -> str | None:
    """The text of an attribute's expression: what two units compare to be the same."""
    if e is None:
        return None
    if isinstance(e, (Num, Tup)):
        return e.expr.render()
    if isinstance(e, Expr):
        return e.render()
    return repr(e)


def _attrs_key(node: Node) -> tuple:
    items = []
    for k, v in sorted(node.attrs.items()):
        if isinstance(v, Init):  # by its arguments' expressions: `normal(0, s)` is one class
            v = (v.family, tuple((n, render_expr(a)) for n, a in v.args))
        items.append((k, render_expr(v) if isinstance(v, (Num, Tup)) else repr(v)))
    return tuple(items)


def expr_of(value) -> Expr:
    """The expression of an attribute value (numbers, tuples, strings)."""
    if isinstance(value, (Num, Tup)):
        return value.expr
    return Const(value)


# ---- building the model ------------------------------------------------------------


class ModelBuilder:
    """Network -> Program. Pure data: no target-specific decisions here."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.variants: dict[str, list[ClassModel]] = {}
        self.anonymous: dict[tuple, list[ClassModel]] = {}  # structure key -> variants
        # the same, by a key that leaves out which value each unit reads (see _merge_rewired)
        self.anonymous_alike: dict[tuple, list[ClassModel]] = {}
        self._wiring: _Wiring | None = None  # the last _wire's choices
        self.order: list[ClassModel] = []
        # class names: not those of module-level names, helper classes or build_model's
        # parameters (`return N(N=N)` would call the parameter)
        self.used_names: set[str] = set(MODULE_LEVEL) | set(net.params)

    def build(self) -> Program:
        main = self._class_for(self.net.root, "network")
        return Program(self.net, [c for c in self.order if c is not main] + [main], main)

    # -- classes ---------------------------------------------------------------

    def _class_for(
        self,
        scope: Scope,
        kind: str,
        name_hint: str = "",
        own_loop: str | None = None,
        units: list[Unit] | None = None,
    ) -> ClassModel:
        if units is None:
            units = self._units(scope, scope)
        inputs, outputs = self._wire(scope, units, kind)
        model = ClassModel(
            name="",
            block=scope.block if kind == "block" else None,
            kind=kind,
            params=[],
            units=units,
            inputs=inputs,
            outputs=outputs,
            in_shapes=[scope.in_shape] if scope.in_shape else [],
        )
        model._wiring = first = self._wiring
        if kind == "block":
            for variant in self.variants.setdefault(scope.block, []):
                if variant.merge(model):
                    _agree(variant, model)
                    return variant
            for variant in self.variants[scope.block]:
                if self._merge_alike(variant, model, scope):
                    return variant
        elif kind == "anonymous":
            # the same structure may still differ inside a conditional's branches
            for variant in self.anonymous.get(model.key(), []):
                if variant.merge(model):
                    _agree(variant, model)
                    return variant
            for variant in self.anonymous_alike.get(_alike_key(model), []):
                if self._merge_alike(variant, model, scope):
                    return variant
        if model._wiring is not first:  # rewired to try a variant: wired as it was
            model.inputs, model.outputs = self._wire(scope, units, kind)
            model._wiring, model._unit_keys = self._wiring, None
        # a new class: work out what only its first instance needs to tell
        model.params, model.uses_in_channels, model.renames = self._params(
            scope, kind, units, own_loop
        )
        model.locals = _locals_of(units) if kind != "anonymous" else []
        model.doc = self._doc(scope, kind)
        model.fresh_output = _is_fresh(_producer(units, outputs[0][1]))
        if kind == "network":
            model.name = self._unique(class_name(self.net.name))
        elif kind == "block":
            model.name = self._unique(class_name(scope.block))
            self.variants[scope.block].append(model)
        else:
            model.name = self._unique(class_name(name_hint))
            self.anonymous.setdefault(model.key(), []).append(model)
            self.anonymous_alike.setdefault(_alike_key(model), []).append(model)
        model._wiring.scope, model._wiring.kind = scope, kind
        model._facts = [_equalities(units)]
        self.order.append(model)
        return model

    def _unique(self, name: str) -> str:
        if keyword.iskeyword(name) or not name.isidentifier():
            name = "Block" + name
        return fresh_name(name, self.used_names, numbered=True)

    def _doc(self, scope: Scope, kind: str) -> str:
        if kind == "network":
            return self.net.signature.source
        if kind == "block":
            sig = self.net.blocks.get(scope.block)
            return sig.source if sig else ""
        return ""

    def _params(self, scope: Scope, kind: str, units: list[Unit], own_loop: str | None):
        """Constructor parameters, whether `in_channels` is one, and symbol renames."""
        used = _symbols_of(units)
        taken = {name for name in used if not is_loop_symbol(name) and not is_index_symbol(name)}
        renames: dict[str, str] = {}
        if kind == "anonymous":
            # free symbols become keyword parameters (closure conversion); the iteration's
            # own input channels become `in_channels`
            uses_in = own_loop in used
            if uses_in and "in_channels" in used:
                renames["in_channels"] = fresh_name("outer_in_channels", taken)
            if uses_in:
                renames[own_loop] = "in_channels"
            # the channels and index of a repeat inside are its loop's own variables
            bound = _bound_symbols(units)
            for symbol in sorted(bound & used):
                renames[symbol] = fresh_name(symbol[1:], taken)
            params = []
            for symbol in sorted(used - {own_loop} - bound, key=lambda n: (n != "in_channels", n)):
                if is_loop_symbol(symbol) or is_index_symbol(symbol):
                    renames[symbol] = fresh_name(symbol[1:], taken)
                name = renames.get(symbol, symbol)
                params.append(Param(name, symbol=symbol))
            for symbol in sorted(_layer_symbols(units)):  # the block's `act_layer`, passed on
                name = fresh_name(f"{symbol}_layer", taken | {p.name for p in params})
                params.append(Param(name, symbol=symbol, layer=True))
            return params, uses_in, renames
        for symbol in sorted(s for s in used if is_loop_symbol(s) or is_index_symbol(s)):
            renames[symbol] = fresh_name(
                symbol[1:],
                taken
                | set(self.net.params)
                | {
                    n
                    for n, _ in (self.net.blocks.get(scope.block).params if kind == "block" else [])
                },
            )
        if kind == "network":
            params = [
                Param(name, _literal(v), False, value=_literal(v))
                for name, v in self.net.params.items()
            ]
            return params, False, renames
        sig = self.net.blocks[scope.block]
        # a tensor parameter's channels come first, after in_channels (as the call passes them)
        params = [
            Param(arg.symbol, value=channels_of(arg.shape).value, tensor=_var(name))
            for name, arg in tensor_args(scope)
        ]
        for name, default in sig.params:
            value = scope.args.get(name)
            if is_layer_param(value):  # an activation: `act_layer`, torchvision's style
                names = {p.name for p in params} | {n for n, _ in sig.params}
                params.append(
                    Param(
                        fresh_name(f"{name}_layer", names - {name}),
                        default,
                        default is None,
                        symbol=name,
                        value=value,
                        layer=True,
                    )
                )
                continue
            if not isinstance(value, (Num, Tup, str)) and value is not None:
                continue  # any other layer passed as an argument is baked into the class
            plain = _literal(value)
            if default is None:
                params.append(Param(name, value=plain))
            elif isinstance(default, (Num, Tup)) and not default.expr.symbols:
                params.append(Param(name, _literal(default), False, value=plain))
            elif isinstance(default, str):
                params.append(Param(name, default, False, value=plain))
            else:
                params.append(Param(name, None, False, computed=expr_of(default), value=plain))
        # a block class always takes its input's channels: a branch merged in from a later
        # instance may need them even where the first instance's branch did not
        return params, True, renames

    # -- units ------------------------------------------------------------------

    def _units(self, scope: Scope, owner: Scope) -> list[Unit]:
        """The units of a class's or a body's scope; `owner` is the scope of the class
        instance they belong to."""
        units = []
        # inside a train-only part (an aux head's block), nothing is train-only again
        whole = scope.kind != "network" and scope.output is not None and scope.output.train_only
        taken = {c.name for c in scope.children}
        passes = sorted(scope.passes, key=lambda p: p[0])
        for position, child in enumerate([*scope.children, None]):
            while passes and passes[0][0] == position:  # `id` as a layer parameter's value
                _, param, value, shape = passes.pop(0)
                stand_in = Node("identity", {}, [value], [shape], shape, scope.span, scope)
                stand_in.name = fresh_name(param, taken, numbered=True)
                units.append(
                    Unit(
                        "layer",
                        _attr(stand_in.name),
                        node=stand_in,
                        shapes=[shape],
                        device=scope.device,
                        param=param,
                        passes=True,
                    )
                )
            if child is None:
                break
            if isinstance(child, Node):
                if child.op == "input":
                    continue
                kind = "merge" if child.op in MERGES else "layer"
                param = child.param if kind == "layer" and child.param else ""
                units.append(
                    Unit(
                        kind,
                        _attr(child.name),
                        param=param,
                        node=child,
                        shapes=[child.shape],
                        train_only=child.train_only and not whole,
                        device=child.device,
                        placed=child.device != scope.device,
                    )
                )
            else:
                unit = self._scope_unit(child, scope, owner)
                unit.train_only = unit.train_only and not whole
                units.append(unit)
            units[-1].items.append((child, owner))
        return units

    def _scope_unit(self, child: Scope, parent: Scope, owner: Scope) -> Unit:
        common = dict(
            attr=_attr(child.name),
            scope=child,
            shapes=[child.result_shape],
            train_only=child.output.train_only if child.output else False,
            device=child.device,
            placed=child.device != parent.device,
        )
        if child.kind == "block":
            cls = self._class_for(child, "block")
            return Unit("call", cls=cls, args=self._call_args(child, cls), **common)
        if child.kind == "repeat":
            return self._repeat(child, parent, owner, common)
        if child.kind == "cond":
            body = self._body(child, parent, owner, common["attr"])
            return Unit("cond", cond=child.cond.expr, branches={child.taken: body}, **common)
        body = self._body(child, parent, owner, common["attr"])
        return Unit("module", body=body, **common)

    def _call_args(self, scope: Scope, cls: ClassModel) -> list:
        args = []
        if cls.uses_in_channels:
            args.append((None, channels_of(scope.in_shape).expr))
        args += [(None, channels_of(arg.shape).expr) for _, arg in tensor_args(scope)]
        params = {p.name for p in cls.params}  # other layer-valued arguments are baked in
        layer_params = {p.symbol: p.name for p in cls.params if p.layer}
        order = list(scope.args)  # the block's parameters, in order
        position, shifted = 0, False
        for keyword_, value in scope.call_args:
            name = keyword_
            if keyword_ is None:
                name, position = order[position], position + 1
            if name in layer_params:
                # the caller's own layer parameter passed on, or a layer written here
                own = getattr(value, "param", None)
                args.append((layer_params[name], LayerArg(value, own)))
                shifted = shifted or keyword_ is None
                continue
            if name not in params or not isinstance(value, (Num, Tup, str)):
                shifted = shifted or keyword_ is None
                continue
            # once a positional argument is left out, the rest go by name
            args.append((None if keyword_ is None and not shifted else name, expr_of(value)))
        return args

    def _repeat(self, scope: Scope, parent: Scope, owner: Scope, common: dict) -> Unit:
        loop_var = _loop_symbol(scope)
        bodies = [self._body(it, parent, owner, common["attr"], loop_var) for it in scope.children]
        updates = {render_expr(channels_of(it.out_shape).expr) for it in scope.children}
        uniform = len({b.key() for b in bodies}) <= 1 and len(updates) <= 1
        count = scope.count.expr
        index = None
        if scope.index is not None:
            symbol, start, stop = scope.index
            index = (symbol, start.expr, stop.expr)
        if not uniform:
            # Iterations differ (e.g. a conditional inside depends on the iteration): unroll,
            # giving each iteration its own input channels (and index).
            units = []
            for i, (b, it) in enumerate(zip(bodies, scope.children)):
                mapping = {loop_var: channels_of(it.in_shape).expr}
                if index is not None:
                    mapping[index[0]] = Const(scope.index[1].value + i)
                    if i:  # its input channels: what the previous iteration (index) made
                        previous = {index[0]: Const(scope.index[1].value + i - 1)}
                        mapping[loop_var] = channels_of(it.in_shape).expr.subst(previous)
                units.append(_as_unit(subst_body(b, mapping), str(i)))
            return Unit("module", body=Body("chain", units=units), **common)
        update = channels_of(scope.children[0].out_shape).expr if scope.children else None
        for other in bodies[1:]:  # one body stands for every iteration
            _absorb_body(bodies[0], other)
        return Unit(
            "repeat",
            count=count,
            init=channels_of(scope.in_shape).expr,
            update=update,
            loop_var=loop_var,
            body=bodies[0] if bodies else None,
            index=index,
            **common,
        )

    def _body(
        self, scope: Scope, parent: Scope, owner: Scope, attr: str, loop_var: str | None = None
    ) -> Body:
        """The content of an iteration, branch or group as one module."""
        units = self._units(scope, owner)
        if not units:
            return Body("identity")
        if _is_chain(scope, units):
            if loop_var is not None and len(units) == 1:
                units[0].attr = "body"  # the iteration's index is not part of its structure
            for previous, unit in zip(units, units[1:]):
                unit.overwrites = _is_fresh(previous)  # a Sequential feeds each output on once
            return Body("single" if len(units) == 1 else "chain", units=units)
        # an anonymous class takes the block's layer parameters it uses (`act_layer`), as
        # the block's class does; an `id` value's place, and a layer the block's class
        # builds in, stay built in
        units = [u for u in units if not u.passes]
        passed = {name for name, value in owner.args.items() if is_layer_param(value)}
        for u in units:
            if u.param and u.param not in passed:
                u.param, u.attr = "", _attr(u.node.name)
            if u.kind == "call":
                u.args = [
                    (k, LayerArg(v.frag, None) if _built_in(v, passed) else v) for k, v in u.args
                ]
        if not units:
            return Body("identity")
        hint = f"{parent.block or self.net.name}_{attr}"
        _reown(units, scope)  # a class of its own: this scope is its instance
        cls = self._class_for(scope, "anonymous", hint, own_loop=loop_var, units=units)
        args = []
        if cls.uses_in_channels:
            args.append((None, Sym(loop_var)))
        for p in cls.params:
            if p.layer:
                args.append((p.name, LayerArg(owner.args[p.symbol], p.symbol)))
            else:
                args.append((p.name, Sym(p.symbol or p.name)))
        return Body("class", cls=cls, args=args)

    # -- data flow -----------------------------------------------------------------

    def _wire(self, scope: Scope, units: list[Unit], kind: str, choose: list | None = None):
        """Assign forward variables: which value each unit reads and writes.

        A unit whose output is its input (a conditional or block that is `id` here)
        passes the value on unchanged: a later unit may read it from either variable.
        By default it reads the latest; `choose` (a _Wiring's `chosen`) picks where it
        may, so that two instances of a block, one with a projection where the other
        has `id`, read the same variables (see _merge_alike). The choices and the
        alternatives are left in self._wiring.
        """
        if kind == "network":
            inputs = [(node, _var(name)) for name, node in self.net.inputs.items()]
            if [var for _, var in inputs] == ["input"]:
                inputs = [(node, "x") for node, _ in inputs]
        else:
            # the input, then a block's tensor parameters (a value may be both: `cell(x)`)
            inputs = [(scope.input, "x")]
            inputs += [(arg.node, _var(name)) for name, arg in tensor_args(scope)]
            bound = {id(node) for node, _ in inputs}
            for node in scope.external:
                if id(node) not in bound:
                    raise NetdslError(
                        f"the emitters cannot yet pass the named value '{_value_name(node)}' "
                        "into a repeated or conditional part",
                        scope.span,
                    )
        # node -> what has produced it so far: its producer, then units that passed it on
        # (the input variables first: a tensor bound to two of them may be read from either)
        produced: dict = {}
        for node, var in inputs:
            produced[node] = produced.get(node, []) + [var]
        position = {id(unit): i for i, unit in enumerate(units)}

        def ref(option):  # a unit as its position: comparable between instances
            return position[id(option)] if isinstance(option, Unit) else option

        wiring = _Wiring()
        reads: list[list] = []
        for unit in units:
            refs = []
            for src in _unit_inputs(unit):
                if src not in produced:
                    raise NetdslError(
                        "the emitters cannot yet use a value defined inside a "
                        "labelled, repeated or conditional part outside of it",
                        unit.node.span if unit.node else unit.scope.span,
                    )
                refs.append(produced[src])
            reads.append(refs)
            output = _unit_output(unit)
            produced[output] = produced[output] + [unit] if output in produced else [unit]
        outputs = []
        if kind == "network":
            for o in self.net.outputs:
                outputs.append((o.name, produced[o.node], o.train_only))
        else:
            outputs.append(("output", produced[scope.output], False))
        # the choices: the one `choose` names where it is an option, else the latest
        wanted = iter(choose or ())
        for options in [*reads, [options for _, options, _ in outputs]]:
            picked = next(wanted, None)
            wiring.options.append([frozenset(ref(o) for o in opts) for opts in options])
            choice = []
            for i, opts in enumerate(options):
                pick = opts[-1]
                if picked is not None:
                    pick = next((o for o in opts if ref(o) == picked[i]), pick)
                choice.append(pick)
            options[:] = choice
            wiring.chosen.append([ref(o) for o in choice])
        outputs = [(n, o, t) for (n, _, t), o in zip(outputs, wiring.chosen_objects(units))]
        self._wiring = wiring
        for unit in units:
            unit.overwrites = False  # (again, where the wiring changes: _allocate decides)
        # allocated in the order forward runs: DSL order, train-only heads where they tap it
        names = _allocate(
            units,
            reads,
            outputs,
            [var for _, var in inputs],
            scope.value_names,
        )
        return [var for _, var in inputs], [
            (n, names[id(ref)] if isinstance(ref, Unit) else ref, t) for n, ref, t in outputs
        ]

    def _merge_alike(self, variant: ClassModel, model: ClassModel, scope: Scope) -> bool:
        """Merge `model` (a new instance) into `variant` where what tells them apart is only
        what a conditional's taken branch makes so, e.g.

            add(if s == 1 and in.c == w then id else conv1 w s=s + bn, conv3 w s=s + bn)

        With the projection, the second branch reads the block's input and the add the
        projection's output; with `id` both are one value, which the default wiring reads
        from the conditional's variable; and the add's channels are `w` in one instance,
        `in_channels` in the other. Both instances are rewired to read, at every input, a
        value that is the same for every instance the class stands for (see _wire), and
        expressions that differ must be equal where the conditions that chose `id` hold
        (`in_channels == w` here). The class keeps the expressions of an instance they
        are right for in every instance: the projection's, which may mean the new one's.
        """
        before = variant._wiring
        if not self._align_wiring(variant, model, scope):
            return False
        facts = _equalities(model.units)
        if variant.unit_keys() == model.unit_keys() or _same_under(
            variant.units, model.units, facts
        ):
            if variant.absorb(model):
                _agree(variant, model)
                return True
        # the new instance's expressions may be the general ones (its conditionals took
        # the projections): they stand for the class if they are right for every instance
        elif variant.kind == "block" and all(
            f and _same_under(variant.units, model.units, f) for f in variant._facts
        ):
            kept = (variant.units, variant.in_shapes, variant.inputs, variant.outputs)
            wiring, instances = variant._wiring, variant.instances
            absorbed = copy.copy(variant)
            variant.units, variant.in_shapes = model.units, list(model.in_shapes)
            variant.inputs, variant.outputs = model.inputs, model.outputs
            variant._wiring, variant.instances, variant._unit_keys = model._wiring, 1, None
            if variant.absorb(absorbed):
                variant._wiring.scope, variant._wiring.kind = scope, wiring.kind
                variant._wiring.admissible = _agreement(wiring, variant._wiring)
                variant._facts.append(facts)
                return True
            variant.units, variant.in_shapes, variant.inputs, variant.outputs = kept
            variant._wiring, variant.instances, variant._unit_keys = wiring, instances, None
        if variant._wiring is not before:  # rewired for nothing: back as it was
            variant.inputs, variant.outputs = self._wire(
                before.scope, variant.units, before.kind, before.chosen
            )
            variant._wiring, variant._unit_keys = before, None
        return False

    def _align_wiring(self, variant: ClassModel, model: ClassModel, scope: Scope) -> bool:
        """Wire `model` and `variant` alike where their instances allow it (False where
        they cannot be: they differ in more than the variables of passed-on values)."""
        ours, theirs = variant._wiring, model._wiring
        if (
            ours is None
            or theirs is None
            or ours.scope is None
            or len(variant.units) != len(model.units)
            or [len(o) for o in ours.options] != [len(o) for o in theirs.options]
            or any(a.kind != b.kind or a.attr != b.attr for a, b in zip(variant.units, model.units))
        ):
            return False
        if ours.chosen == theirs.chosen:
            return True
        admissible = _agreement(ours, theirs)
        if any(not options for row in admissible for options in row):
            return False
        chosen = [
            [c if c in options else max(options, key=_latest) for c, options in zip(row, rows)]
            for row, rows in zip(ours.chosen, admissible)
        ]
        if chosen != theirs.chosen:
            model.inputs, model.outputs = self._wire(scope, model.units, ours.kind, chosen)
            model._wiring, model._unit_keys = self._wiring, None
        if chosen != ours.chosen:
            inputs, outputs = self._wire(ours.scope, variant.units, ours.kind, chosen)
            if _is_fresh(_producer(variant.units, outputs[0][1])) != variant.fresh_output:
                # classes that call it decided on it: put it back as it was
                variant.inputs, variant.outputs = self._wire(
                    ours.scope, variant.units, ours.kind, ours.chosen
                )
                variant._unit_keys = None
                return False
            variant.inputs, variant.outputs = inputs, outputs
            variant._wiring, variant._unit_keys = self._wiring, None
            variant._wiring.scope, variant._wiring.kind = ours.scope, ours.kind
            variant._wiring.admissible = ours.admissible
        return True


@dataclass(eq=False)
class _Wiring:
    """Which value each unit of a class reads (and the class returns): `chosen[i][j]` is
    the producer of unit i's input j (the last row: the outputs), as the producing
    unit's position or the input variable; `options` lists for each the producers that
    hold the same value in this instance (a unit that passes its input on adds itself).
    `admissible`: the options every instance the class stands for agrees on."""

    options: list = field(default_factory=list)
    chosen: list = field(default_factory=list)
    admissible: list | None = None  # None: the options (one instance so far)
    scope: Scope | None = None  # the first instance's (to wire the class again)
    kind: str = ""

    def agreed(self) -> list:
        return self.options if self.admissible is None else self.admissible

    def chosen_objects(self, units: list[Unit]) -> list:
        return [units[c] if isinstance(c, int) else c for c in self.chosen[-1]]


def _agreement(ours: _Wiring, theirs: _Wiring) -> list:
    """The choices admissible for the instances of both."""
    return [[a & b for a, b in zip(x, y)] for x, y in zip(ours.agreed(), theirs.options)]


def _agree(variant: ClassModel, model: ClassModel) -> None:
    """`variant` absorbed `model`: later rewiring and expressions must suit `model` too."""
    if variant._wiring is not None and model._wiring is not None:
        variant._wiring.admissible = _agreement(variant._wiring, model._wiring)
    variant._facts.append(_equalities(model.units))


def _equalities(units: list[Unit]) -> list[tuple[Expr, Expr]]:
    """The equalities an instance's conditionals rely on: `in_channels == w` where
    `if s == 1 and in.c == w then id else ...` took `id` (or `in.c != w or ...` its `else`)."""
    found: list[tuple[Expr, Expr]] = []

    def facts(e: Expr, holds: bool) -> None:
        if isinstance(e, BoolOp) and e.op == ("and" if holds else "or"):
            facts(e.left, holds)
            facts(e.right, holds)
        elif isinstance(e, Not):
            facts(e.operand, not holds)
        elif isinstance(e, Cmp) and e.op == ("==" if holds else "!="):
            found.append((e.left, e.right))

    for u in units:
        if u.kind == "cond" and len(u.branches) == 1:
            (taken,) = u.branches
            facts(u.cond, taken)
        elif u.kind == "module" and u.body is not None and u.body.kind in ("single", "chain"):
            found += _equalities(u.body.units)
        elif u.kind == "call" and u.scope is not None and u.scope.in_shape:
            # a block that is a conditional (`shortcut`): its facts, in this block's terms
            start = len(found)
            for child in u.scope.children:
                if isinstance(child, Scope) and child.kind == "cond":
                    facts(child.cond.expr, child.taken)
            mapping = {k: expr_of(v) for k, v in u.scope.args.items() if isinstance(v, Num)}
            mapping["in_channels"] = channels_of(u.scope.in_shape).expr
            mapping.update((a.symbol, channels_of(a.shape).expr) for _, a in tensor_args(u.scope))
            found[start:] = [(a.subst(mapping), b.subst(mapping)) for a, b in found[start:]]
    # facts about a loop's variables hold in one iteration only
    return [
        (a, b)
        for a, b in found
        if not any(is_loop_symbol(n) or is_index_symbol(n) for n in a.symbols | b.symbols)
    ]


def _same_under(a: list[Unit], b: list[Unit], equalities: list) -> bool:
    """Whether units `a` and `b` compute the same where `equalities` hold: their keys agree
    once each equality is read as a rewriting (a symbol := the other side), one way or
    the other (a few equalities at most)."""
    sides = []
    for left, right in equalities[:4]:
        ways = [(x.name, y) for x, y in ((left, right), (right, left)) if isinstance(x, Sym)]
        if ways:
            sides.append(ways)
    if not sides:
        return False
    for rewriting in itertools.product(*sides):
        mapping = dict(rewriting)
        if [subst_unit(u, mapping).key() for u in a] == [subst_unit(u, mapping).key() for u in b]:
            return True
    return False


def _latest(ref) -> tuple:
    """Order of producers: the input variables, then units by position."""
    return (1, ref) if isinstance(ref, int) else (0, 0)


def _alike_key(model: ClassModel) -> tuple:
    """A class's structure without its wiring (which values its units read)."""
    return (model.kind, tuple((u.kind, u.attr) for u in model.units), len(model.outputs))


def _unit_inputs(unit: Unit) -> list:
    if unit.node is not None:
        return list(unit.node.inputs)
    if unit.kind == "call":  # the block's input, then its tensor parameters'
        return [unit.scope.input] + [arg.node for _, arg in tensor_args(unit.scope)]
    return [unit.scope.input]


def _value_name(node: Node) -> str:
    """The DSL name of a named value (`a = ...`), as the scope that named it recorded it."""
    scope = node.scope
    while scope is not None:
        if id(node) in scope.value_names:
            return scope.value_names[id(node)]
        scope = scope.parent
    return node.var or node.name


def tensor_args(scope: Scope) -> list[tuple[str, TensorArg]]:
    """A block scope's parameters bound to named tensors, in the block's order."""
    return [(name, v) for name, v in scope.args.items() if isinstance(v, TensorArg)]


def _unit_output(unit: Unit):
    if unit.passes:
        return unit.node.inputs[0]
    return unit.node if unit.node is not None else unit.scope.output


def _allocate(units, reads, outputs, input_vars, value_names: dict) -> dict:
    """Give each unit's output a variable, reusing a name at its last use (x = f(x))."""
    remaining: dict = {}

    def key(ref):
        return id(ref) if isinstance(ref, Unit) else ref

    for refs in reads:
        for ref in refs:
            remaining[key(ref)] = remaining.get(key(ref), 0) + 1
    for _, ref, _ in outputs:
        remaining[key(ref)] = remaining.get(key(ref), 0) + 1
    readers = dict(remaining)  # an in-place op may only change a value nothing else reads
    names: dict = {}
    taken = set(input_vars)
    counter = [0]

    def fresh(preferred: str | None) -> str:
        if preferred and preferred not in taken:
            taken.add(preferred)
            return preferred
        base = preferred or "out"
        while True:
            counter[0] += 1
            candidate = base if counter[0] == 1 and base not in taken else f"{base}{counter[0]}"
            if candidate not in taken:
                taken.add(candidate)
                return candidate

    live: dict = {}  # variable -> value key currently held
    for v in input_vars:
        live[v] = v
    for unit, refs in zip(units, reads):
        in_vars = [names[id(r)] if isinstance(r, Unit) else r for r in refs]
        unit.inputs = in_vars
        for r in refs:
            remaining[key(r)] -= 1
        named = value_names.get(id(_unit_output(unit)))
        preferred = _var(named) if named else None
        reusable = [
            (v, r)
            for v, r in zip(in_vars, refs)
            if remaining[key(r)] == 0 and live.get(v) == key(r)
        ]
        if preferred is None and reusable and not unit.train_only:
            name, ref = reusable[0]
            if _is_add2(unit):  # add into whichever operand is a fresh, otherwise unread tensor
                name, ref = next(
                    (
                        (v, r)
                        for v, r in reusable
                        if isinstance(r, Unit) and _is_fresh(r) and readers[key(r)] == 1
                    ),
                    (name, ref),
                )
            unit.overwrites = (
                isinstance(ref, Unit)
                and _is_fresh(ref)
                and readers[key(ref)] == 1
                and (len(refs) == 1 or (_is_add2(unit) and refs.count(ref) == 1))
            )
        else:
            name = fresh(preferred)
        names[id(unit)] = name
        live[name] = id(unit)
        unit.output = name
    return names


def _is_add2(unit: Unit) -> bool:
    """A two-way add: `out = out + x` may then add in place (`out += x`, as torchvision's
    ResNet does) when one operand is a fresh tensor nothing else reads. Floating-point
    addition is commutative, so either operand may be the one overwritten."""
    return unit.kind == "merge" and unit.node.op == "add" and len(unit.node.inputs) == 2


def _is_fresh(unit) -> bool:
    if not isinstance(unit, Unit) or unit.param:  # (a parameter's layer may be `id`)
        return False
    if unit.kind in ("layer", "merge"):
        return FRESH in traits(unit.node.op)
    return unit.kind == "call" and unit.cls.fresh_output


def _producer(units: list[Unit], var: str):
    for unit in reversed(units):
        if unit.output == var:
            return unit
    return None


def _is_chain(scope: Scope, units: list[Unit]) -> bool:
    """Units that form a simple pipeline, expressible as a Sequential."""
    if any(u.kind not in ("layer", "call") or u.placed for u in units):
        return False  # (a Sequential cannot move data between devices)
    previous = scope.input
    for u in units:
        sources = _unit_inputs(u)
        if len(sources) != 1 or sources[0] is not previous:
            return False
        previous = _unit_output(u)
    return previous is scope.output


def subst_body(body: Body, mapping: dict) -> Body:
    """A copy of `body` with symbols replaced by expressions."""
    clone = copy.copy(body)
    if body.kind == "class":
        clone.args = [(k, v.subst(mapping)) for k, v in body.args]
    else:
        clone.units = [subst_unit(u, mapping) for u in body.units]
    return clone


def subst_unit(unit: Unit, mapping: dict) -> Unit:
    clone = copy.copy(unit)
    if unit.kind == "call":
        clone.args = [(k, v.subst(mapping)) for k, v in unit.args]
    elif unit.kind in ("layer", "merge"):
        node = copy.copy(unit.node)
        node.attrs = {k: _subst_value(v, mapping) for k, v in unit.node.attrs.items()}
        node.in_shapes = [
            tuple(_subst_value(d, mapping) for d in shape) for shape in unit.node.in_shapes
        ]
        clone.node = node
    elif unit.body is not None:
        clone.body = subst_body(unit.body, mapping)
    return clone


def _subst_value(value, mapping: dict):
    if isinstance(value, Num):
        return Num(value.value, value.expr.subst(mapping))
    if isinstance(value, Tup):
        return Tup(
            [_subst_value(v, mapping) for v in value.items],
            value._expr.subst(mapping) if value._expr is not None else None,
        )
    if isinstance(value, Init):
        return Init(value.family, tuple((k, _subst_value(a, mapping)) for k, a in value.args))
    return value


def _as_unit(body: Body, attr: str) -> Unit:
    if body.kind == "single":
        return body.units[0]
    return Unit("module", attr=attr, body=body)


def _loop_symbol(scope: Scope) -> str:
    """The elaborator's symbol for an iteration's input channels (see _apply_RepeatFrag)."""
    depth, parent = 0, scope.parent
    while parent is not None and parent.kind in ("repeat", "iteration", "cond", "group"):
        depth += parent.kind == "repeat"
        parent = parent.parent
    return "@channels" if depth == 0 else f"@channels{depth + 1}"


def is_loop_symbol(name: str) -> bool:
    """An iteration's input channels (`@channels`): a local of the emitted loop."""
    return name.startswith("@")


def is_index_symbol(name: str) -> bool:
    """The index of `[body for i in range(n)]` (`#i`): the emitted loop's variable."""
    return name.startswith("#")


def _attr(name: str) -> str:
    if name.isdigit():
        return f"layer{name}"
    if keyword.iskeyword(name) or name in _PY_RESERVED:
        return name + "_"
    return name


def _var(name: str) -> str:
    """A local variable: it may hide neither an attribute name forward uses nor a module-level
    name of the generated file (`torch = self.relu(x)` would break `torch.cat` below it)."""
    if keyword.iskeyword(name) or name in _PY_RESERVED or name in MODULE_LEVEL:
        return name + "_"
    return name


# attribute names an nn.Module (or our forward) already uses
_PY_RESERVED = {
    "self",
    "x",
    "forward",
    "training",
    "eval",
    "train",
    "to",
    "cuda",
    "cpu",
    "float",
    "half",
    "double",
    "type",
    "apply",
    "modules",
    "children",
    "parameters",
    "buffers",
    "named_modules",
    "state_dict",
    "load_state_dict",
    "zero_grad",
    "register_buffer",
    "add_module",
    "extra_repr",
    "requires_grad_",
    "share_memory",
    "bfloat16",
    "get_submodule",
    "dump_patches",
}


# what generated files define or import at module level (both targets), helpers included:
# the one set of names a generated file's classes, functions and variables avoid
MODULE_LEVEL = (
    frozenset(
        {
            "torch",
            "nn",
            "Tensor",
            "warnings",
            "math",
            "keras",
            "layers",
            "ops",
            "build_model",
            "place_devices",
            "partial",
            "Callable",
            "INPUT_SHAPE",
            "INPUT_SHAPES",
            "DEVICES",
        }
    )
    | helper_names()
    | runtime_names()
)


@dataclass
class FileHeader:
    """What every generated model file opens with, whatever its target."""

    version: str
    source: str  # the .net file, as a comment
    network: str
    input_shape: str  # INPUT_SHAPE's literal, in the target's layout
    input_shapes: str | None  # INPUT_SHAPES' items, for several inputs
    helpers: list[str]  # templates/<target>/helpers/ to write, in order
    uses_math: bool  # the code calls math.log, math.sqrt or math.exp
    numeric_functions: list[str]  # the .net file's `def` functions the code calls, as Python
    statistics: bool  # BatchNorm's running statistics: the demo counts them apart
    uses_callable: bool  # a class takes a layer: `act_layer: Callable[..., nn.Module]`
    uses_partial: bool  # a layer with arguments is passed: `partial(nn.LeakyReLU, 0.2)`


def file_header(net: Network, helpers: set[str], layout=tuple, code=()) -> dict:
    """FileHeader's fields; `layout` turns a (C, H, W) shape into the target's order."""
    shapes = {name: layout(node.out_shape) for name, node in net.inputs.items()}
    return dict(
        version=__version__,
        source=fmt.comment_text(net.path),
        network=fmt.comment_text(net.name),
        input_shape=fmt.literal(next(iter(shapes.values()))),
        input_shapes=(
            ", ".join(f"{fmt.py_str(k)}: {fmt.literal(v)}" for k, v in shapes.items())
            if len(shapes) > 1
            else None
        ),
        helpers=helper_order(helpers),
        uses_callable=any("Callable[" in line for line in code),
        uses_partial=any(re.search(r"(?<![\w.])partial\(", line) for line in code),
        **numeric_functions(net, code),
        statistics=net.total_buffers > 0,
    )


_MATH_CALL = re.compile(r"(?<![\w.])math\.(?:log|sqrt|exp)\(")


def function_text(function: NumericFunction) -> str:
    """`def name(params):` and its `return`, laid out as ruff lays them out."""
    lines = fmt.statement(f"def {function.name}", "", list(function.params), 0, suffix=":")
    lines += fmt.headed("return ", function.body.render(), 1)
    return "\n".join(lines)


def numeric_functions(net: Network, code) -> dict:
    """The `def` functions that the generated code (its lines, `code`) calls, directly or
    through one another, as module-level Python functions; and whether it needs math."""
    text = "\n".join(code)
    used: set[str] = set()
    stack = [n for n in net.functions if re.search(rf"(?<![\w.]){n}\(", text)]
    while stack:
        name = stack.pop()
        if name not in used:
            used.add(name)
            stack.extend(c for c in net.functions[name].calls if c in net.functions)
    texts = [function_text(net.functions[name]) for name in sorted(used)]
    uses_math = any(_MATH_CALL.search(t) for t in (text, *texts))
    return dict(uses_math=uses_math, numeric_functions=texts)


def helper_order(helpers: set[str]) -> list[str]:
    """The order helpers are written in: classes by name, then functions."""
    return sorted(helpers, key=lambda h: (h[0].islower(), h))


def _literal(value):
    if isinstance(value, (Num, Tup)):
        return value.value
    return value


def _walk_exprs(units: list[Unit]):
    for u in units:
        if u.kind in ("layer", "merge"):
            for v in u.node.attrs.values():
                if isinstance(v, (Num, Tup)):
                    yield v.expr
                elif isinstance(v, Init):
                    yield from (a.expr for _, a in v.args if isinstance(a, Num))
            for shape in u.node.in_shapes:
                yield channels_of(shape).expr
        elif u.kind == "call":
            for _, e in u.args:
                yield e
        elif u.kind == "repeat":
            yield from (e for e in (u.count, u.init, u.update) if e is not None)
            if u.index is not None:
                yield from u.index[1:]
            if u.body is not None:
                for e in _body_exprs(u.body):
                    yield e
        elif u.kind == "cond":
            yield u.cond
            for body in u.branches.values():
                yield from _body_exprs(body)
        elif u.kind == "module":
            yield from _body_exprs(u.body)


def _body_exprs(body: Body):
    if body.kind == "class":
        for _, e in body.args:
            yield e
    else:
        yield from _walk_exprs(body.units)


def _bound_symbols(units: list[Unit]) -> set[str]:
    """Loop symbols (`@channels`, `#i`) of the repeats among these units (not inside other
    classes): variables of loops in the same class, not free symbols."""
    found: set[str] = set()
    stack = list(units)
    while stack:
        u = stack.pop()
        if u.kind == "repeat":
            found.add(u.loop_var)
            if u.index is not None:
                found.add(u.index[0])
        bodies = [u.body] if u.kind in ("repeat", "module") and u.body is not None else []
        if u.kind == "cond":
            bodies = list(u.branches.values())
        for body in bodies:
            if body.kind in ("single", "chain"):
                stack.extend(body.units)
    return found


def _built_in(value, passed: set) -> bool:
    """A layer given at a call that the enclosing class cannot pass on: written out."""
    return isinstance(value, LayerArg) and value.param not in passed


def _layer_symbols(units: list[Unit]) -> set[str]:
    """The block's layer parameters these units use: directly, or passed to a call."""
    found = {u.param for u in units if u.param}
    for u in units:
        if u.kind == "call":
            found |= {v.param for _, v in u.args if isinstance(v, LayerArg) and v.param}
    return found


def _symbols_of(units: list[Unit]) -> set[str]:
    out: set[str] = set()
    for e in _walk_exprs(units):
        out |= e.symbols
    return out


def fresh_name(name: str, taken: set, numbered: bool = False) -> str:
    """The first of `name`, `name_`, `name__`, ... (or `name`, `name2`, `name3`, ... when
    `numbered`) that is neither in `taken` nor a Python keyword; it is taken from then on.
    Every name a generated file allocates comes from here."""
    candidate, n = name, 2
    while candidate in taken or keyword.iskeyword(candidate):
        candidate, n = (f"{name}{n}", n + 1) if numbered else (candidate + "_", n)
    taken.add(candidate)
    return candidate


def _locals_of(units: list[Unit]) -> list[tuple[str, Expr]]:
    found: dict[str, Expr] = {}

    def visit(e: Expr) -> None:
        if isinstance(e, Local):
            visit(e.value)
            found.setdefault(e.name, e.value)
        for child in getattr(e, "__dict__", {}).values():
            if isinstance(child, Expr):
                visit(child)
            elif isinstance(child, tuple):
                for c in child:
                    if isinstance(c, Expr):
                        visit(c)

    for e in _walk_exprs(units):
        visit(e)
    return list(found.items())


def shape_comment(unit: Unit, in_shapes: list, renames: dict | None = None) -> str:
    """`256x56x56` when every instance agrees, else e.g. `(c * 4, H/2, W/2)`.

    H and W stand for the class input's height and width.
    """
    shapes = unit.shapes
    if not shapes:
        return ""
    first = shapes[0]
    if all(tuple(d.value for d in s) == tuple(d.value for d in first) for s in shapes):
        return fmt_shape(first)
    dims = []
    for i, d in enumerate(first):
        if len({s[i].value for s in shapes}) == 1:
            dims.append(str(d.value))
        elif i == 0:
            expr = d.expr.subst({k: Sym(v) for k, v in (renames or {}).items()})
            dims.append(expr.render() if not isinstance(expr, Const) else "C")
        else:
            dims.append(_spatial_ratio(shapes, in_shapes, i))
    return "(" + ", ".join(dims) + ")"


def _spatial_ratio(shapes: list, in_shapes: list, i: int) -> str:
    letter = "HW"[i - 1] if i <= 2 else "?"
    if len(in_shapes) != len(shapes) or any(len(s) <= i for s in in_shapes):
        return "?"
    pairs = {(s[i].value, t[i].value) for s, t in zip(shapes, in_shapes)}
    if all(out == inp for out, inp in pairs):
        return letter
    ratios = {inp / out if out else 0 for out, inp in pairs}
    if len(ratios) == 1:
        r = ratios.pop()
        if r == int(r) and r > 1:
            return f"{letter}/{int(r)}"
    return "?"


def frozen_guard(net: Network, indent: int = 0) -> list[str]:
    """Statements refusing parameter values the generated code cannot follow.

    Where an effect of a network parameter had to be written as a constant (see
    Network.frozen_params), building with another value would give a model that
    does not match the .net file; the generated code says so instead.
    """

    lines = []
    for name in net.frozen_params:
        value = fmt.literal(net.params[name].value)
        message = fmt.py_str(
            f"this file was generated for {name}={value}, and netdsl wrote some "
            f"of its effects as constants: recompile with --param {name}=..."
        )
        # laid out at the caller's depth (`indent` levels), returned without it
        test = fmt.condition("if ", f"{name} != ", value, ":", indent)
        raised = fmt.statement("raise ", "ValueError", [message], indent + 1)
        lines += [line[len(fmt.INDENT) * indent :] for line in test + raised]
    return lines


def refuse_other_values(condition: str, indent: int) -> list[str]:
    """`raise ValueError(...)` for a structure the generated code fixed when `condition`
    (a Python expression in the generated code's names) had one value."""

    message = fmt.py_str(
        f"this model was generated for {condition}; "
        "recompile the .net file with netdsl for other values"
    )
    return fmt.statement("raise ", "ValueError", [message], indent)


def is_default(value, default) -> bool:
    """Whether a layer argument is its default, so the generated call can leave it out."""
    if isinstance(value, Num):
        return value.is_const and value.value == default and type(value.value) is type(default)
    if isinstance(value, Tup):
        return value.is_const and all(
            v == default and type(v) is type(default) for v in value.value
        )
    return value == default


def type_hint(value) -> str:
    """The annotation of a generated parameter with this default."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float):
        return "float"
    if isinstance(value, tuple):
        if value and all(isinstance(v, tuple) for v in value):  # a table of rows
            return "tuple[tuple[int, ...], ...]"
        if any(isinstance(v, float) for v in value):
            return "tuple[float, ...]"
        return "tuple[int, ...]"
    if isinstance(value, str):
        return "str"
    return "int"


def class_doc(cls: ClassModel, parts: dict) -> list[str]:
    """The docstring lines of a block's class (or function) or of an anonymous part, in
    both targets: what it implements, and the DSL text it comes from."""
    if cls.kind == "block":
        many = f" ({cls.instances} instances)" if cls.instances > 1 else ""
        return [f"Block `{cls.block}`{many}:", ""] + fmt.docstring_text(cls.doc)
    part = parts.get(id(cls))
    if part is None:
        return ["A part of its enclosing block."]
    title, source = part
    return [title + ":", ""] + fmt.docstring_text(source) if source else [title + "."]


def anonymous_parts(program: Program) -> dict[int, tuple[str, str]]:
    """Docstrings of the anonymous classes (or functions): what part of which block each
    one is, and the DSL text it comes from."""
    parts: dict[int, tuple[str, str]] = {}

    def visit(units: list[Unit], owner: str) -> None:
        for u in units:
            bodies = []
            if u.kind == "repeat" and u.body is not None:
                bodies = [(u.body, "One repetition")]
            elif u.kind == "cond":
                bodies = [
                    (b, f"The `{'then' if taken else 'else'}` branch")
                    for taken, b in u.branches.items()
                ]
            elif u.kind == "module":
                label = u.scope.label if u.scope is not None else None
                bodies = [(u.body, f"The part labelled `{label}`" if label else "A part")]
            for body, what in bodies:
                if body.kind == "class" and id(body.cls) not in parts:
                    source = (
                        _source_text(program.network, u.scope.span) if u.scope is not None else ""
                    )
                    parts[id(body.cls)] = (f"{what} of {owner}", source)
                elif body.kind in ("single", "chain"):
                    visit(body.units, owner)

    for cls in program.classes:
        if cls.kind == "network":
            owner = f"network `{program.network.name}`"
        elif cls.kind == "block":
            owner = f"block `{cls.block}`"
        else:
            owner = parts.get(id(cls), ("its enclosing block",))[0].split(" of ", 1)[-1]
        visit(cls.units, owner)
    return parts


def _source_text(net: Network, span) -> str:
    """The DSL text a span covers (whole lines, dedented), as the network was compiled from."""
    return textwrap.dedent(net.sources.text(span)).strip()


class Emitter:
    """One code generation target: tables from op to emitting function (sqlglot's TRANSFORMS).

    A target fills LAYERS (a layer op -> how its module or layer is written) and MERGES (a
    merge op -> how the join is written), and names in UNSUPPORTED, with the reason, every
    op it cannot write: `program` refuses those with a located error before emitting
    anything, so no op is ever dropped. tests/test_catalogue.py checks that every op of the
    catalogue is in one of the three.
    """

    target = ""  # the name --target takes
    weights = None  # pretrained.Weights of --weights, while emit_model writes a model
    LAYERS: dict = {}
    MERGES: dict = {}
    UNSUPPORTED: dict[str, str] = {}

    def program(self, net: Network) -> Program:
        for node in net.nodes():
            reason = self.UNSUPPORTED.get(node.op)
            if reason is not None:
                raise NetdslError(
                    f"the {self.target} target cannot express '{node.op}': {reason}", node.span
                )
        return ModelBuilder(net).build()

    def context(self, program: Program):
        """What templates/<target>/model.py.j2 lays out (the target's own dataclass)."""
        raise NotImplementedError

    def emit_model(self, net: Network, weights=None) -> str:
        """The model file's source text; `weights` (pretrained.Weights, from --weights) gives
        build_model a `pretrained` keyword that loads them."""
        self.weights = weights
        return render(f"{self.target}/model.py.j2", self.context(self.program(net)))

    def emit_train(self, net: Network, model_module: str) -> str:
        """The training script's source text; `model_module` is the model file's module name.
        Its header comes from netdsl/emit/<target>_train.py, its body from netdsl/runtime/."""
        train = importlib.import_module(f"{__package__}.{self.target}_train")
        return render(f"{self.target}/train.py.j2", train.train_context(net, model_module))
