"""The elaborated network: a scope tree over a networkx DAG of typed nodes.

* A `Node` is one op application (a layer, a merge, an input). It knows its
  inputs, output shape, parameters, MACs and the span of the DSL text that
  created it. Numbers in `attrs` and `shape` are traced `Num`s whose
  expressions are relative to the node's scope (see symbolic.py).
* A `Scope` is one block instance (or a repeat, one iteration of it, a
  conditional, or a labelled group). Its `children` are nodes and sub-scopes
  in DSL order, which is also the order of the generated modules' parameters.
  Emitters write one class per block definition from these scopes.
* `Network.graph` is the networkx DiGraph over node ids (built on first use,
  so `netdsl check` never imports networkx); edges carry the input positions
  (`indices`) so concat order is explicit.

Symbols visible inside a scope: for a block scope, the block's parameters,
`in_channels` (the channels of its input) and, for each parameter bound to a
named tensor, that tensor's channels (`TensorArg.symbol`); an iteration scope adds its own
`in_channels`; cond and group scopes share their parent's symbols.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from .errors import SourceSnapshot, Span
from .symbolic import Expr, Num, TokenIds, Tup, channels_of


class Node:
    __slots__ = (
        "id",
        "name",
        "label",
        "op",
        "attrs",
        "inputs",
        "in_shapes",
        "shape",
        "params",
        "macs",
        "buffers",
        "span",
        "scope",
        "device",
        "var",
        "train_only",
        "called_as",
        "param",
    )

    def __init__(
        self,
        op: str,
        attrs: dict,
        inputs: list[Node],
        in_shapes: list[tuple],
        shape: tuple,
        span: Span,
        scope: Scope,
        params: int = 0,
        macs: int = 0,
        buffers: int = 0,
        device: str | None = None,
        called_as: str | None = None,
    ):
        self.id = ""
        self.name = ""
        self.label: str | None = None
        self.op = op
        self.attrs = attrs
        self.inputs = inputs
        self.in_shapes = in_shapes
        self.shape = shape
        self.params = params
        self.macs = macs
        self.buffers = buffers
        self.span = span
        self.scope = scope
        self.device = device
        self.var: str | None = None  # an input's name
        self.train_only = False
        self.called_as = called_as or op
        # the block parameter whose value this layer is (`act` in `conv c + bn + act`), when
        # that value is an activation: emitters make it a constructor argument
        self.param: str | None = None

    @property
    def out_shape(self) -> tuple[int, ...]:
        dims = tuple(int(d.value) for d in self.shape)
        return TokenIds(dims, self.shape.vocab) if isinstance(self.shape, TokenIds) else dims

    @property
    def in_channels(self) -> Num:
        return channels_of(self.in_shapes[0])

    def value(self, attr: str):
        """The concrete value of an attribute (ints, floats, bools, tuples, strings)."""
        v = self.attrs.get(attr)
        return v.value if isinstance(v, (Num, Tup)) else v

    def __repr__(self) -> str:
        return f"<Node {self.id or self.op} {self.op} {self.out_shape}>"


@dataclass(eq=False)
class TensorArg:
    """A block argument bound to a named tensor (`cell(a, 4)` for `block cell(prev, c)`).

    The block scope reads `node` from outside (it is in the scope's `external`); inside
    the block the parameter is that tensor, its channels the symbol `symbol`
    (`prev_channels`), which the generated class takes beside `in_channels`."""

    name: str  # the name the caller passed (`a`)
    node: Node  # the tensor's producer
    shape: tuple  # its shape in the caller's terms
    symbol: str  # its channels inside the block

    @property
    def value(self) -> str:
        """The argument as written (what a summary prints for the call)."""
        return self.name


@dataclass(eq=False)
class BlockSignature:
    """A block definition as emitters need it: name, parameters, defaults, doc."""

    name: str
    params: list[tuple[str, object]]  # (name, default value or None); default is a Num/Tup/str
    source: str  # the definition's DSL text, for docstrings
    span: Span


@dataclass(eq=False)
class Scope:
    kind: str  # "network" | "block" | "repeat" | "iteration" | "cond" | "group"
    parent: Scope | None
    span: Span
    block: str | None = None
    # param -> value, expressions in the parent's terms (a TensorArg for a tensor)
    args: dict = field(default_factory=dict)
    call_args: list = field(default_factory=list)  # [(keyword or None, value)] as written
    input: Node | None = None  # producer of the input tensor
    in_shape: tuple = ()  # the input shape, expressions in the parent's terms
    output: Node | None = None
    out_shape: tuple = ()  # expressions relative to this scope
    result_shape: tuple = ()  # the output shape as the parent sees it
    children: list = field(default_factory=list)
    name: str = ""
    id: str = ""
    label: str | None = None
    device: str | None = None
    count: Num | None = None  # repeat
    index: tuple | None = None  # repeat with an index: (symbol "#i", start Num, stop Num)
    cond: Num | None = None  # cond
    taken: bool | None = None  # cond
    # named tensors from outer scopes used here: a block's tensor arguments (TensorArg in
    # args), or values an iteration of a repeat reads from the scope that owns it
    external: list = field(default_factory=list)
    value_names: dict = field(default_factory=dict)  # id(node) -> name from `name = ...` here
    frozen: set = field(default_factory=set)  # symbols this scope had to write as constants
    # a block parameter whose value is `id`, applied here: (position in children, parameter,
    # the value passed on, its shape); emitters keep a place for the layer a caller may pass
    passes: list = field(default_factory=list)

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else self.parent.depth + 1

    def walk(self) -> Iterator[Node | Scope]:
        """Every node and scope below this one, in DSL order (pre-order)."""
        for child in self.children:
            yield child
            if isinstance(child, Scope):
                yield from child.walk()

    def nodes(self) -> Iterator[Node]:
        for item in self.walk():
            if isinstance(item, Node):
                yield item

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes())

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes() if not n.train_only)

    def __repr__(self) -> str:
        return f"<Scope {self.kind} {self.id or self.name or self.block}>"


@dataclass(eq=False)
class Output:
    name: str
    node: Node
    train_only: bool
    span: Span


@dataclass(frozen=True)
class NumericFunction:
    """A `def` function as generated code writes it: `def name(params): return body`."""

    name: str
    params: tuple[str, ...]  # `v`, or `d=8` with its default
    body: Expr  # over the parameters; its operators mean in Python what they mean in the DSL
    calls: frozenset  # the functions it calls


@dataclass(eq=False)
class Network:
    name: str
    path: str
    params: dict  # network parameter -> value (after --param overrides)
    signature: BlockSignature
    inputs: dict  # name -> input Node
    outputs: list[Output]
    root: Scope
    ordered: list  # every Node in DSL order, a topological order
    blocks: dict  # block name -> BlockSignature, for every block used
    train: dict  # the train section, as plain data
    defaults: dict = field(default_factory=dict)
    # network parameters whose effect the generated code writes as constants (a channel
    # count after an irregular repeat, a layer passed to a block...): a generated
    # build_model() must not accept other values for them
    frozen_params: list = field(default_factory=list)
    # the DSL texts it was elaborated from, as they were then (see errors.SourceSnapshot)
    sources: SourceSnapshot = field(default_factory=SourceSnapshot)
    # name -> NumericFunction, for each `def` function the network calls
    functions: dict = field(default_factory=dict)
    # the loader's ModuleEnv of the file it was compiled from: its definitions, which
    # passes that judge the program as written (lint's unused blocks) read
    module: object = None

    @property
    def main_output(self) -> Output:
        return next(o for o in self.outputs if not o.train_only)

    def nodes(self) -> list[Node]:
        """Every node in DSL order (a topological order)."""
        return self.ordered

    @cached_property
    def graph(self):
        """The DAG as a networkx DiGraph: node id -> {"node": Node}; edges carry `indices`."""
        import networkx as nx

        graph = nx.DiGraph(network=self.name)
        for node in self.ordered:
            graph.add_node(node.id, node=node)
            for index, src in enumerate(node.inputs):
                if graph.has_edge(src.id, node.id):
                    graph.edges[src.id, node.id]["indices"].append(index)
                else:
                    graph.add_edge(src.id, node.id, indices=[index])
        graph.graph["outputs"] = [(o.name, o.node.id, o.train_only) for o in self.outputs]
        return graph

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self.nodes())

    @property
    def total_buffers(self) -> int:
        return sum(n.buffers for n in self.nodes())

    @property
    def total_macs(self) -> int:
        """Multiply-accumulates of the eval path (train-only heads excluded)."""
        return sum(n.macs for n in self.nodes() if not n.train_only)

    def node(self, node_id: str) -> Node:
        return self._by_id[node_id]

    @cached_property
    def readers(self) -> dict:
        """node id -> the nodes that read its output, in DSL order (one entry per read), for
        the passes that follow data forward: memory's liveness, lint."""
        readers: dict = {n.id: [] for n in self.ordered}
        for n in self.ordered:
            for src in n.inputs:
                readers[src.id].append(n)
        return readers

    @cached_property
    def _by_id(self) -> dict:
        return {n.id: n for n in self.ordered}
