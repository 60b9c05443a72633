"""Keras backend: functional Keras 3 code in the style of keras.applications.

One builder function per DSL block definition (`def bottleneck(x, c, s=1, name=None)`),
one named layer per line (`x = layers.Conv2D(..., name=f"{name}_conv")(x)`), and the
model assembled once at the end by `build_model`. Every Keras layer is named after the
IR node it implements (its dotted id with `_` for `.`), so the generated model can be
compared with the inferred shapes layer by layer.

The generated model computes what the PyTorch model generated from the same file
computes, on channels-last tensors:

* padding: `padding="same"` only where it provably equals PyTorch's symmetric padding
  (stride 1 and p = d*(k-1)/2 for convs; the exact window positions for pooling, in
  every instance of the layer); otherwise explicit `ZeroPadding2D` + "valid". Max
  pooling pads with -inf (a generated `MaxPoolPadding2D`) unless its input is provably
  non-negative, where zeros are equivalent; ceil mode adds the extra bottom/right rows;
  average pooling divides by PyTorch's count (padded zeros count, the ceil-mode
  overhang does not) through a generated `PaddedAveragePooling2D` where Keras'
  divisor differs.
* flatten: a `Permute((3, 1, 2))` before `Flatten` gives PyTorch's C, H, W feature
  order. So every tensor of the Keras model equals the PyTorch model's (up to the
  NCHW/NHWC layout), whatever consumes the flattened features, and weights move
  between the two models with per-layer layout changes only (netdsl.weights).
* adaptive pooling: a plain pool where the windows divide the input evenly, else
  Keras' AdaptiveAverage/MaxPooling2D, which follow PyTorch's uneven windows.
* a conv that both strides and dilates (Keras' Conv2D cannot): the dilated conv at
  stride 1, then every s-th position (MaxPooling2D(1, strides=s)).
* BatchNormalization: PyTorch's epsilon, and momentum = 1 - PyTorch's momentum.
* placement (@gpu/@cpu) has no per-layer equivalent on every Keras backend: it is
  noted in the module docstring and the layers' comments, not dropped silently.
* token sequences are (batch, N, D), PyTorch's batch-first layout: `tokens` and
  `image` are Reshapes (NHWC's row-major positions are PyTorch's flatten(2) order),
  `patch_embed` a Conv2D with kernel = stride = p then a Reshape, `attention` Keras'
  MultiHeadAttention called as self-attention (a `SelfAttention` subclass; causal:
  its causal mask), token ids an int32 input. A tied `fc n tie=emb` is the
  embedding's `ReversibleEmbedding` called again with reverse=True: one table.
* initial weights: every tensor starts from the distribution netdsl gives it
  (netdsl.initializers.resolve: the init the file writes, else PyTorch's default), so
  a layer whose PyTorch default is not Keras' own gets explicit initializers
  (`kernel_initializer=keras.initializers.VarianceScaling(scale=1 / 3, ...)`, PyTorch's
  U(+-1/sqrt(fan_in)); `bias_initializer=FanInUniform(...)`, its bias). Fans are
  PyTorch's: where Keras counts a layout's otherwise (a depthwise kernel, an embedding
  table, attention's projections) a generated helper draws with PyTorch's.
  `build_model(seed=...)` seeds Keras first: the same weights on every run.
* train-time outputs (auxiliary classifiers): `build_model()` returns the eval model;
  `build_model(training_outputs=True)` also builds the heads and returns them as extra
  outputs after the main one, for training with their loss weights.

Decisions that depend on the input size are taken per instance of a layer (all the
IR nodes one line of code stands for), from the inferred shapes. What Keras cannot
express is a located NetdslError.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

from .. import initializers
from ..errors import NetdslError
from ..initializers import Init
from ..ir import Node
from ..layers import TensorSize, pair, shape_kind, spec_of, zeropad_sides
from ..resources import helper_names, templates_dir
from ..symbolic import (
    BoolOp,
    Cmp,
    Const,
    Expr,
    Not,
    Num,
    Sym,
    Tup,
    binary,
    channel_axis,
    channels_of,
)
from . import format as fmt
from .base import (
    Body,
    ClassModel,
    Emitter,
    FileHeader,
    LayerArg,
    Program,
    Unit,
    anonymous_parts,
    class_doc,
    expr_of,
    file_header,
    fresh_name,
    frozen_guard,
    is_default,
    is_index_symbol,
    is_loop_symbol,
    layer_node,
    refuse_other_values,
    type_hint,
)
from .padding import (
    PoolWindows,
    conv_padding,
    non_negative,
    pair_values,
    pool_windows,
    strides_and_dilates,
)
from .pretrained import keras_comment, training_weights_name

INDENT = fmt.INDENT
LINE = fmt.LINE
# trailers of a layer call that are not its input: a kept embedding layer, and its reuse
_TABLE, _TIED = "<table>", "<tied>"

# names the generated module defines or imports, and build_model's own: variables and
# functions avoid them
_MODULE_NAMES = helper_names() | {
    "keras",
    "layers",
    "ops",
    "build_model",
    "INPUT_SHAPE",
    "INPUT_SHAPES",
    "inputs",
    "training_outputs",
    "name",
    "model",
    "example",
    "result",
}
_AMBIGUOUS = {"l", "I", "O"}  # ruff E741


@dataclass
class FunctionText:
    name: str
    doc: list[str]
    signature: list[str]
    body: list[str]


@dataclass
class FileContext(FileHeader):
    model_name: str
    notes: list[str]
    uses_ops: bool
    functions: list[FunctionText]
    builder: list[str]
    builder_doc: list[str]
    builder_body: list[str]
    outputs: int
    input_comment: str
    vocab: int | None  # the input's vocabulary where it is token ids
    vocabs: str | None  # {input: vocabulary} of the inputs that are token ids, for several
    weights_comment: list[str] | None = None  # --weights: what PRETRAINED is
    weights_reference: str | None = None  # PRETRAINED's literal: the .weights.h5 file
    training_reference: str | None = None  # PRETRAINED_TRAINING's: with train-time heads


@cache
def _uses_ops(helper: str) -> bool:
    """Whether a helper computes with keras.ops (the file then imports it)."""
    text = (templates_dir() / "keras" / "helpers" / f"{helper}.py.j2").read_text("utf-8")
    return "ops." in text


def _ids(node: Node) -> bool:
    """Whether an input holds token ids (integers below a vocabulary)."""
    return shape_kind(node.out_shape) == "ids"


def _input_text(net) -> dict:
    """The comment on INPUT_SHAPE, and the vocabularies of inputs that are token ids."""
    first_name, first = next(iter(net.inputs.items()))
    comment = {
        "ids": "(N,) token ids of one example",
        "tokens": "(N, D) tokens of one example",
    }.get(shape_kind(first.out_shape), "(H, W, C) of one example")
    vocabs = {name: n.out_shape.vocab for name, n in net.inputs.items() if _ids(n)}
    if len(net.inputs) > 1:
        text = ", ".join(f"{fmt.py_str(k)}: {v}" for k, v in vocabs.items())
        return dict(input_comment=comment, vocab=None, vocabs=text or None)
    return dict(input_comment=comment, vocab=vocabs.get(first_name), vocabs=None)


def keras_name(node: Node) -> str:
    """The Keras layer name of an IR node: its dotted id with `_` for `.`."""
    return node.id.replace(".", "_")


# ---- small helpers ------------------------------------------------------------------------


def _snake(name: str) -> str:
    """PoolSame2 -> pool_same2, ShortcutAChoice -> shortcut_a_choice."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _negate(e: Expr) -> Expr:
    inverse = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}
    if isinstance(e, Const) and isinstance(e.value, bool):
        return Const(not e.value)
    if isinstance(e, Cmp):
        return Cmp(inverse[e.op], e.left, e.right)
    if isinstance(e, BoolOp):
        return BoolOp("or" if e.op == "and" else "and", _negate(e.left), _negate(e.right))
    if isinstance(e, Not):
        return e.operand
    return Not(e)


def _nchw_to_nhwc(shape: tuple) -> tuple:
    return tuple(shape[1:]) + (shape[0],) if len(shape) == 3 else tuple(shape)


def _shape_text(values: tuple) -> str:
    return "x".join(str(v) for v in _nchw_to_nhwc(values))


# ---- rendering ------------------------------------------------------------------------------


@dataclass
class _Ctx:
    """Where a unit sits: how its names and its input's channels are written."""

    prefix: tuple  # name parts: ("lit", text) or ("expr", python expression)
    indent: int


class _Writer:
    def __init__(self, program: Program, emitter: KerasEmitter) -> None:
        self.program = program
        self.emitter = emitter
        self.net = program.network
        # DSL order of every node and scope: a unit's instances are listed in it
        self._order = {id(item): i for i, item in enumerate(program.network.root.walk())}
        self._records: dict[int, list] = {}
        self.helpers: set[str] = set()
        self.names: dict[str, Node] = {}  # Keras layer name -> IR node (collision check)
        self.placed: set[str] = set()
        self.nonneg_memo: dict = {}
        self.functions: dict[int, str] = {}
        self._param_names: dict[int, dict[str, str]] = {}
        self.var_names = self._all_variables()
        # embeddings whose table an fc reuses (`fc n tie=emb`)
        self._tied = {
            id(n.attrs["tie"].node) for n in self.net.nodes() if n.attrs.get("tie") is not None
        }
        reserved = set(_MODULE_NAMES) | self.var_names | _AMBIGUOUS
        taken = set(reserved)
        for cls in program.classes:
            if cls is program.main:
                continue
            base = cls.block if cls.kind == "block" and cls.block else _snake(cls.name)
            if base in reserved:
                base = base + "_block"
            self.functions[id(cls)] = fresh_name(base, taken, numbered=True)
        self.parts = anonymous_parts(program)
        # anonymous classes take only the parameters their Keras code reads
        self.kept: dict[int, set] = {}
        for cls in program.classes:
            if cls.kind == "anonymous":
                used = self._symbols(cls.units)
                self.kept[id(cls)] = {p.name for p in cls.params if (p.symbol or p.name) in used}

    def _symbols(self, units: list[Unit]) -> set[str]:
        """Symbols that the Keras code of these units reads."""
        found: set[str] = set()

        def add(value) -> None:
            if isinstance(value, LayerArg):  # the block's layer parameter, passed on
                found.update((value.param,) if value.param else ())
            elif isinstance(value, Init):  # an init's numbers (`bias_init=b`)
                for _, arg in value.args:
                    add(arg)
            elif isinstance(value, (Num, Tup)):
                found.update(value.expr.symbols)
            elif isinstance(value, Expr):
                found.update(value.symbols)

        def body(b: Body | None) -> None:
            if b is None or b.kind == "identity":
                return
            if b.kind == "class":
                for _, value in self.body_args(b):
                    add(value)
            else:
                visit(b.units)

        def visit(us: list[Unit]) -> None:
            for u in us:
                if u.kind == "layer":
                    found.update((u.param,) if u.param else ())
                    for key, value in u.node.attrs.items():
                        if key not in spec_of(u.node.op).derived:
                            add(value)
                elif u.kind == "call":
                    for _, value in _call_values(u.cls, u.args):
                        add(value)
                elif u.kind == "repeat":
                    add(u.count)
                    body(u.body)
                elif u.kind == "cond":
                    add(u.cond)
                    for b in u.branches.values():
                        body(b)
                elif u.kind == "module":
                    body(u.body)

        visit(units)
        return found

    def param_names(self, cls: ClassModel) -> dict[str, str]:
        """Parameters a builder function takes under another name (`inputs` -> `inputs_`):
        the function and every call of it spell them so."""
        names = self._param_names.get(id(cls))
        if names is None:
            names = self._param_names[id(cls)] = {}
            taken = set(self.var_names) | set(_MODULE_NAMES) | set(self.functions.values())
            for p in cls.params:
                # build_model's keywords are the network's parameter names, l/I/O included
                ambiguous = p.name in _AMBIGUOUS and cls is not self.program.main
                if ambiguous or p.name in _MODULE_NAMES:
                    names[p.name] = fresh_name(p.name + "_", taken, numbered=True)
        return names

    def body_args(self, body: Body) -> list:
        """The arguments a class body is called with (in_channels comes from x)."""
        cls = body.cls
        args = body.args[1:] if cls.uses_in_channels else body.args
        kept = self.kept.get(id(cls))
        if kept is None:
            return args
        return [(k, v) for k, v in args if k in kept]

    def _all_variables(self) -> set[str]:
        found: set[str] = set()
        for cls in self.program.classes:
            found.update(cls.inputs)
            found.update(var for _, var, _ in cls.outputs)
            found.update(p.name for p in cls.params)
            found.update(name for name, _ in cls.locals)
            for unit in cls.units:
                found.update(unit.inputs)
                if unit.output:
                    found.add(unit.output)
        return found

    # -- the file --------------------------------------------------------------------------

    def context(self) -> FileContext:
        net = self.net
        functions = [
            self._function(cls) for cls in self.program.classes if cls is not self.program.main
        ]
        builder, doc, body, n_outputs = self._builder()
        notes = []
        if self.placed:
            notes = textwrap.wrap(
                "The .net file places parts of the network on devices ("
                + ", ".join(sorted(self.placed))
                + "). Keras 3 has no per-layer placement "
                "that works on every backend, so the comments mark them and the model runs "
                "where Keras puts it (train.py replicates it on every GPU with the backend's "
                "data-parallel engine).",
                84,
            )
        code = [*builder, *body, *(line for f in functions for line in (*f.signature, *f.body))]
        header = file_header(net, self.helpers, _nchw_to_nhwc, code)
        header["uses_math"] = header["uses_math"] or "TruncNormal" in self.helpers
        return FileContext(
            **header,
            model_name=fmt.py_str(net.name),
            notes=notes,
            uses_ops=any(_uses_ops(h) for h in self.helpers),
            functions=functions,
            builder=builder,
            builder_doc=doc,
            builder_body=body,
            outputs=n_outputs,
            **_input_text(net),
            **self._weights_fields(),
        )

    def _weights_fields(self) -> dict:
        """PRETRAINED and its comment, for --weights: the file netdsl compile converts the
        weights into, beside the model file (pretrained.keras_weights_path)."""
        weights = self.emitter.weights
        if weights is None:
            return {}
        heads = any(train for _, _, train in self.program.main.outputs)
        return dict(
            weights_comment=keras_comment(weights),
            weights_reference=fmt.py_str(weights.keras_file),
            training_reference=fmt.py_str(training_weights_name(weights.keras_file))
            if heads
            else None,
        )

    # -- functions ---------------------------------------------------------------------------

    def _function(self, cls: ClassModel) -> FunctionText:
        fn = _Function(self, cls)
        name = self.functions[id(cls)]
        kept = self.kept.get(id(cls))
        params = (
            ["x"]
            + [fn.var(v) for v in cls.inputs[1:]]  # a block's tensor parameters
            + [
                fn.param_text(p)
                for p in cls.params
                if (kept is None or p.name in kept) and not p.tensor
            ]
            + ["name=None"]
        )
        signature = fmt.statement(f"def {name}", "", params, 0, suffix=":")
        body = fn.body(cls.units, _Ctx((("expr", "name"),), 1))
        body.append(f"{INDENT}return {fn.var(cls.outputs[0][1])}")
        return FunctionText(name, self._doc(cls), signature, body)

    def _doc(self, cls: ClassModel) -> list[str]:
        return class_doc(cls, self.parts)

    def _builder(self):
        cls = self.program.main
        net = self.net
        fn = _Function(self, cls, network=True)
        train_outputs = [o for o in cls.outputs if o[2]]
        params = [fn.param_text(p, hints=True) for p in cls.params]
        if train_outputs:
            params.append("training_outputs: bool = False")
        # build_model's seed keyword: `seed`, unless the network has a parameter of that
        # name (as the PyTorch target and train.py name it; it is read before any
        # variable of the network's is assigned)
        seed = fresh_name("seed", set(net.params))
        params.append(f"{seed}: int | None = None")
        weights = self.emitter.weights  # --weights: build_model(pretrained=...)
        if weights is not None:
            taken = self._all_variables() | set(net.params) | {seed, "inputs"}
            self.pretrained = fresh_name("pretrained", taken)
            params.append(f"{self.pretrained}: bool = False")
            model_var, folder = fresh_name("model", taken), fresh_name("folder", taken)
        builder = fmt.statement("def build_model", "", params, 0, suffix=" -> keras.Model:")
        doc = ["Build the network; keyword arguments override the .net file's parameters."]
        doc += [""] + textwrap.wrap(
            f"Given {seed}, Keras' random generators are seeded first "
            "(keras.utils.set_random_seed): the same initial weights on every run.",
            84,
        )
        if weights is not None:
            doc += [""] + textwrap.wrap(
                f"Given {self.pretrained}=True, the weights in PRETRAINED (beside this file) "
                "replace the initial ones.",
                84,
            )
        if train_outputs:
            names = ", ".join(o[0] for o in train_outputs)
            doc += [""] + textwrap.wrap(
                "The model has the eval-time output. With training_outputs=True it also has "
                f"the train-time heads ({names}) as further outputs, after the main one; "
                "then keras.Model(model.input, model.outputs[0]) is the eval model with the "
                "same weights.",
                84,
            )
        body: list[str] = [INDENT + line for line in frozen_guard(net, 1)]
        pad = INDENT
        body += [
            f"{pad}if {seed} is not None:",
            f"{pad}{INDENT}keras.utils.set_random_seed({seed})",
        ]
        node_inputs = list(net.inputs.items())
        input_vars = cls.inputs
        if len(node_inputs) == 1:
            (input_name, node), var = node_inputs[0], input_vars[0]
            dtype = ', dtype="int32"' if _ids(node) else ""  # token ids
            body += fmt.assignment(
                "inputs", f'keras.Input(shape=INPUT_SHAPE{dtype}, name="{input_name}")', 1
            )
            body.append(f"{pad}{fn.var(var)} = inputs")
            self._register(net.inputs[input_name], "")
        else:
            for (input_name, node), var in zip(node_inputs, input_vars):
                dtype = ', dtype="int32"' if _ids(node) else ""
                body += fmt.assignment(
                    fn.var(var),
                    f'keras.Input(shape=INPUT_SHAPES["{input_name}"]{dtype}, name="{input_name}")',
                    1,
                )
                self._register(node, "")
            body.append(f"{pad}inputs = [{', '.join(fn.var(v) for v in input_vars)}]")
        body += fn.body(cls.units, _Ctx((), 1))
        eval_outs = [fn.var(v) for _, v, t in cls.outputs if not t]
        train_outs = [fn.var(v) for _, v, t in cls.outputs if t]
        model = fmt.py_str(net.name)

        start = "return " if weights is None else f"{model_var} = "

        def model_line(outs: list[str], indent: int) -> list[str]:
            value = outs[0] if len(outs) == 1 else f"[{', '.join(outs)}]"
            return fmt.statement(start, "keras.Model", ["inputs", value, f"name={model}"], indent)

        if train_outs:
            body.append(f"{pad}if training_outputs:")
            body += model_line(eval_outs + train_outs, 2)
            if weights is not None:
                body.append(f"{pad}else:")
                body += model_line(eval_outs, 2)
            else:
                body += model_line(eval_outs, 1)
        else:
            body += model_line(eval_outs, 1)
        if weights is not None:
            body += [
                f"{pad}if {self.pretrained}:",
                f"{pad * 2}{folder} = os.path.dirname(os.path.abspath(__file__))",
            ]
            saved = "PRETRAINED"
            if train_outs:  # the train-time heads' weights are in a file of their own
                saved = fresh_name("saved", taken)
                body.append(
                    f"{pad * 2}{saved} = PRETRAINED_TRAINING if training_outputs else PRETRAINED"
                )
            body += [
                f"{pad * 2}{model_var}.load_weights(os.path.join({folder}, {saved}))",
                f"{pad}return {model_var}",
            ]
        return builder, doc, body, len(eval_outs)

    def _register(self, node: Node, suffix: str) -> None:
        name = keras_name(node) + suffix
        other = self.names.get(name)
        if other is not None and other is not node:
            raise NetdslError(
                f"the Keras layer name '{name}' would be used twice (by {other.id} and "
                f"{node.id}{' ' + suffix if suffix else ''})",
                node.span,
                hint="rename one of them with `as label`",
            )
        self.names[name] = node
        if node.device is not None:
            self.placed.add(node.device)

    def records(self, unit: Unit) -> list:
        """(IR node or scope, its class instance's scope) for every instance of a unit, in
        DSL order: all the nodes one line of generated code stands for."""
        key = id(unit)
        if key not in self._records:
            self._records[key] = sorted(unit.items, key=lambda item: self._order[id(item[0])])
        return self._records[key]

    def tied(self, nodes: list[Node]) -> bool:
        """Whether an fc reuses the table of one of these embedding nodes."""
        return any(id(n) in self._tied for n in nodes)

    def nonneg(self, node: Node) -> bool:
        return non_negative(node, self.nonneg_memo)


class _Function:
    """Rendering state of one builder function."""

    def __init__(self, writer: _Writer, cls: ClassModel, network: bool = False) -> None:
        self.w = writer
        self.cls = cls
        self.network = network
        # symbol -> Python name: anonymous classes' closure parameters, l/I/O, ...
        self.renames: dict[str, Expr] = {}
        if cls.kind == "anonymous":
            self.renames = {k: Sym(v) for k, v in cls.renames.items()}
        else:  # loop indices (`#i`) print as the loop's variable
            self.renames = {k: Sym(v) for k, v in cls.renames.items() if is_index_symbol(k)}
        self.param_names = writer.param_names(cls)
        for p in cls.params:
            if p.name in self.param_names:
                self.renames[p.symbol or p.name] = Sym(self.param_names[p.name])
        taken = set(writer.var_names) | set(_MODULE_NAMES) | set(writer.functions.values())
        self.taken = taken | {self.param_names.get(p.name, p.name) for p in cls.params}
        self.taken |= {n for n, _ in cls.locals} | {"x", "name", "in_channels"}
        # an anonymous class may take its enclosing block's in_channels as a parameter
        self.in_channels_param = any(
            self.param_names.get(p.name, p.name) == "in_channels" for p in cls.params
        )
        self.needs_var: set[str] = set()  # channel symbols written as a variable
        self.var_uses: set[str] = set()  # ... and those read in the region being rendered
        self.channel_vars: dict[str, str] = {"in_channels": "in_channels"}
        # a tensor parameter's channels (`prev_channels`): read from the tensor, like x's
        self.tensor_channels = {p.name: self.var(p.tensor) for p in cls.params if p.tensor}
        self.channel_vars.update((name, name) for name in self.tensor_channels)
        self.taken |= {self.var(v) for v in cls.inputs}
        self.loop_depth = 0
        self.tables: dict[int, str] = {}  # id of a tied embedding node -> its layer's variable

    # -- names ---------------------------------------------------------------------------------

    def var(self, name: str) -> str:
        out = name
        # `in_channels` is the function's own variable for its input's channels (a conv
        # bias's PyTorch init reads it): a tensor the program names so becomes in_channels_
        while (
            out in _AMBIGUOUS
            or out in _MODULE_NAMES
            or out in self.w.functions.values()
            or out == "in_channels"
        ):
            out = out + "_"
        return out

    def param_text(self, p, hints: bool = False) -> str:
        name = self.param_names.get(p.name, p.name)
        if p.layer:  # a layer class (keras.applications' style): `act_layer=layers.ReLU`
            return name if p.required else f"{name}={self.layer_value(p.default)}"
        hint = ""
        if hints:
            hint = ": " + type_hint(p.value if p.value is not None else p.default)
        if p.computed is not None:
            return f"{name}{hint} = None" if hints else f"{name}=None"
        if p.required:
            return f"{name}{hint}"
        eq = " = " if hints else "="
        return f"{name}{hint}{eq}{fmt.literal(p.default)}"

    @staticmethod
    def name_text(prefix: tuple, local: str) -> str:
        parts = list(prefix) + ([("lit", local)] if local else [])
        if not parts:
            raise AssertionError("a layer without a name")
        if all(kind == "lit" for kind, _ in parts):
            return fmt.py_str("_".join(text for _, text in parts))
        if len(parts) == 1:
            return parts[0][1]
        inner = "_".join(text if kind == "lit" else "{" + text + "}" for kind, text in parts)
        return 'f"' + inner + '"'

    # -- expressions ---------------------------------------------------------------------------

    def expr(self, value, in_var: str | None = None, in_channels: Expr | None = None) -> str:
        """An attribute's expression in this function's terms.

        Channel symbols (the block's `in_channels`, a loop's iteration channels) are
        written `x.shape[-1]` when the unit reads a tensor with exactly those channels,
        else as a variable that the function (or loop body) defines.
        """
        e = value if isinstance(value, Expr) else expr_of(value)
        if self.renames and e.symbols & set(self.renames):
            e = e.subst(self.renames)
        channel = self._channel_symbols(e)
        if channel:
            inline = None
            if in_var is not None and in_channels is not None:
                c = in_channels.subst(self.renames) if self.renames else in_channels
                if isinstance(c, Sym):
                    inline = c.name
            mapping = {}
            for symbol in channel:
                # a block's input channels are read from the input itself, once: what the
                # unit reads may have other channels in another instance of the block
                # (`add(if in.c == c then id else conv1 c, ...)` is c wide, not in.c)
                if symbol == inline and symbol != "in_channels" and symbol not in self.needs_var:
                    mapping[symbol] = Sym(f"{in_var}.shape[-1]")
                else:
                    self.needs_var.add(symbol)
                    self.var_uses.add(symbol)
                    mapping[symbol] = Sym(self.channel_vars.get(symbol, "in_channels"))
            # a renaming to itself changes nothing, and substituting would inline the
            # function's locals (`q = in_channels // 2`) into the expression
            mapping = {s: m for s, m in mapping.items() if m != Sym(s)}
            if mapping:
                e = e.subst(mapping)
        return e.render()

    def _channel_symbols(self, e: Expr) -> set[str]:
        return {
            s
            for s in e.symbols
            if (s == "in_channels" and not self.in_channels_param)
            or is_loop_symbol(s)
            or s in self.tensor_channels
        }

    # -- bodies --------------------------------------------------------------------------------

    def body(self, units: list[Unit], ctx: _Ctx) -> list[str]:
        """The function's statements (two passes: the first finds channel variables)."""
        lines = self._render_all(units, ctx)
        if self.needs_var:
            self.var_uses = set()
            lines = self._render_all(units, ctx)
        head = []
        pad = INDENT * ctx.indent
        for p in self.cls.params:
            if p.computed is not None:
                name = self.param_names.get(p.name, p.name)
                head += [
                    f"{pad}if {name} is None:",
                    f"{pad}{INDENT}{name} = {self.expr(p.computed)}",
                ]
        for name, value in self.cls.locals:
            head += fmt.assignment(name, self.expr(value), len(pad) // len(INDENT))
        for symbol, tensor in reversed(self.tensor_channels.items()):
            if symbol in self.var_uses:
                head.insert(0, f"{pad}{symbol} = {tensor}.shape[-1]")
        if "in_channels" in self.var_uses:  # (the lines above may use it too)
            head.insert(0, f"{pad}in_channels = {self.cls.inputs[0]}.shape[-1]")
        return head + lines

    def _render_all(self, units: list[Unit], ctx: _Ctx) -> list[str]:
        lines: list[str] = []
        pending_train: list[str] = []
        for unit in units:
            ins = [self.var(v) for v in unit.inputs]
            out = self.var(unit.output)
            if unit.train_only and self.network:
                inner = _Ctx(ctx.prefix, ctx.indent + 1)
                pending_train += self.unit(unit, inner, ins, out, self.local(unit))
                continue
            if pending_train:
                lines += [f"{INDENT * ctx.indent}if training_outputs:"] + pending_train
                pending_train = []
            lines += self.unit(unit, ctx, ins, out, self.local(unit))
        if pending_train:
            lines += [f"{INDENT * ctx.indent}if training_outputs:"] + pending_train
        return lines

    @staticmethod
    def local(unit: Unit) -> str:
        """The unit's own part of its layers' names ("" for an iteration's only item)."""
        if unit.node is not None:
            name = unit.node.name
        elif unit.scope is not None:
            name = unit.scope.name
        else:
            name = unit.attr
        return "" if name.isdigit() else name

    def unit(self, unit: Unit, ctx: _Ctx, ins: list[str], out: str, local: str) -> list[str]:
        if unit.kind == "layer":  # (a second input: the tensor whose size it takes)
            return self.layer(unit, ctx, ins[0], out, local, *ins[1:])
        if unit.kind == "merge":
            return self.merge(unit, ctx, ins, out, local)
        if unit.kind == "call":
            return self.call(unit, ctx, ins, out, local)
        if unit.kind == "repeat":
            return self.repeat(unit, ctx, ins[0], out, local)
        if unit.kind == "cond":
            return self.cond(unit, ctx, ins[0], out, local)
        return self.module(unit, ctx, ins[0], out, local)

    def _comment(self, unit: Unit) -> str:
        records = self.w.records(unit)
        shapes = []
        for item, owner in records:
            shape = item.shape if isinstance(item, Node) else item.result_shape
            shapes.append((tuple(int(d.value) for d in shape), shape, owner))
        if not shapes:
            return ""
        first_values, first_shape, _ = shapes[0]
        devices = sorted(
            {item.device for item, _ in records if unit.placed and item.device is not None}
        )
        where = f" on {', '.join(devices)}" if devices else ""
        if all(values == first_values for values, _, _ in shapes):
            return _shape_text(first_values) + where
        dims = []
        for i, d in enumerate(first_shape):
            if len({values[i] for values, _, _ in shapes}) == 1:
                dims.append(str(d.value))
            elif i == channel_axis(first_shape):  # C, or a token's D
                e = d.expr.subst(self.renames) if self.renames else d.expr
                # a loop's iteration channels read as C
                e = e.subst({s: Sym("C") for s in e.symbols if is_loop_symbol(s)})
                dims.append(e.render() if not isinstance(e, Const) else "C")
            else:
                dims.append(_ratio(shapes, i))
        return "(" + ", ".join(_nchw_to_nhwc(tuple(dims))) + ")" + where

    # -- layers -----------------------------------------------------------------------------

    def layer_value(self, frag) -> str:
        """A layer value as a class: `layers.ReLU`, `partial(layers.LeakyReLU, ...)`."""
        node = layer_node(frag)
        if node is None:
            return "layers.Identity"
        ((func, args, _, _),) = self.w.emitter.LAYERS[node.op](_LayerCall(self, node, [node], "x"))
        return f"partial({func}, {', '.join(args)})" if args else func

    def arg_text(self, value, **ctx) -> str:
        if isinstance(value, LayerArg):
            own = {p.symbol: p.name for p in self.cls.params if p.layer}
            if value.param in own:
                return self.param_names.get(own[value.param], own[value.param])
            if value.choice:  # `layers.ReLU if not settings[i][4] else ...`
                cond, then, orelse = value.choice
                return (
                    f"{self.layer_value(then)} if {self.expr(cond, **ctx)} "
                    f"else {self.layer_value(orelse)}"
                )
            return self.layer_value(value.frag)
        return self.expr(value, **ctx)

    def layer(
        self, unit: Unit, ctx: _Ctx, inp: str, out: str, local: str, like: str | None = None
    ) -> list[str]:
        if unit.param:  # the function's layer parameter
            p = next(p for p in self.cls.params if p.layer and p.symbol == unit.param)
            for n, _ in self.w.records(unit):
                self.w._register(n, "")
            name = self.name_text(ctx.prefix, local)
            func = self.param_names.get(p.name, p.name)
            return _statement(out, func, [f"name={name}"], inp, ctx.indent, self._comment(unit))
        node = unit.node
        nodes = [item for item, _ in self.w.records(unit)]
        calls = self._layer_calls(unit, node, nodes, inp, like)
        lines: list[str] = []
        current = inp
        comment = self._comment(unit)
        for i, (func, args, suffix, trailer) in enumerate(calls):
            last = i == len(calls) - 1
            if trailer == _TIED:  # an embedding's table, transposed: its layer, called again
                lines += self._tied(nodes, current, out, ctx.indent, comment if last else "")
                current = out
                continue
            for n in nodes:
                self.w._register(n, suffix)
            name = self.name_text(ctx.prefix, local + suffix if local else suffix.lstrip("_"))
            if trailer == _TABLE:  # the layer object is kept: a tied fc calls it again
                table = fresh_name(f"{out}_layer", self.taken, numbered=True)
                self.taken.add(table)
                for n in nodes:
                    self.tables[id(n)] = table
                lines += _call_statement(table, func, args + [f"name={name}"], ctx.indent, "")
                lines += fmt.with_comment(
                    [f"{INDENT * ctx.indent}{out} = {table}({current})"],
                    comment if last else "",
                    ctx.indent,
                )
                current = out
                continue
            lines += _statement(
                out,
                func,
                args + [f"name={name}"],
                trailer or current,
                ctx.indent,
                comment if last else "",
            )
            current = out
        return lines

    def _tied(self, nodes: list[Node], inp: str, out: str, indent: int, comment: str) -> list[str]:
        """`fc n tie=emb`: the embedding's layer projecting back (its table transposed)."""
        tables = {self.tables.get(id(n.attrs["tie"].node)) for n in nodes}
        if len(tables) != 1 or None in tables:
            name = nodes[0].attrs["tie"].name
            raise NetdslError(
                f"the keras backend cannot tie this fc to `{name}`: the fc must be written "
                "in the function that calls the embedding's layer (`emb(x, reverse=True)`)",
                nodes[0].span,
                hint="write the embedding and `fc ... tie=` in the same block, or both in the "
                "network, outside repeats",
            )
        (table,) = tables
        statement = f"{INDENT * indent}{out} = {table}({inp}, reverse=True)"
        note = f"{keras_name(nodes[0].attrs['tie'].node)}'s table, transposed (tied)"
        return fmt.with_comment([statement], f"{comment}: {note}" if comment else note, indent)

    def _kw(self, name: str, value, default, **ctx) -> list[str]:
        if is_default(value, default):
            return []
        return [f"{name}={self.expr(value, **ctx)}"]

    def _layer_calls(
        self, unit: Unit, node: Node, nodes: list[Node], inp: str, like: str | None = None
    ) -> list:
        """[(layer class, args, name suffix, trailer or None)] for one layer unit."""
        return self.w.emitter.LAYERS[node.op](_LayerCall(self, node, nodes, inp, like))

    # -- merges, calls and structure -----------------------------------------------------------

    def merge(self, unit: Unit, ctx: _Ctx, ins: list[str], out: str, local: str) -> list[str]:
        node = unit.node
        nodes = [item for item, _ in self.w.records(unit)]
        for n in nodes:
            self.w._register(n, "")
        cls, args = self.w.emitter.MERGES[node.op]
        if len(ins) == 1:
            cls, args = "layers.Identity", []
        name = self.name_text(ctx.prefix, local)
        trailer = ins[0] if len(ins) == 1 else f"[{', '.join(ins)}]"
        return _statement(
            out, cls, args + [f"name={name}"], trailer, ctx.indent, self._comment(unit)
        )

    def call(self, unit: Unit, ctx: _Ctx, ins: list[str], out: str, local: str) -> list[str]:
        cls = unit.cls
        inp = ins[0]
        args = list(ins)  # the input, then the block's tensor parameters
        call_args = _call_values(cls, unit.args)
        in_channels = (
            channels_of(unit.scope.in_shape).expr if unit.scope and unit.scope.in_shape else None
        )
        renamed = self.w.param_names(cls)
        for keyword_, value in call_args:
            text = self.arg_text(value, in_var=inp, in_channels=in_channels)
            args.append(text if keyword_ is None else f"{renamed.get(keyword_, keyword_)}={text}")
        args.append(f"name={self.name_text(ctx.prefix, local)}")
        return _call_statement(
            out, self.w.functions[id(cls)], args, ctx.indent, self._comment(unit)
        )

    def _body(
        self, body: Body, ctx: _Ctx, inp: str, out: str, in_channels: Expr | None, comment: str = ""
    ) -> list[str]:
        pad = INDENT * ctx.indent
        if body.kind == "identity":
            return [] if inp == out else [f"{pad}{out} = {inp}"]
        if body.kind == "class":
            cls = body.cls
            args = [inp]
            renamed = self.w.param_names(cls)
            for keyword_, value in self.w.body_args(body):
                text = self.arg_text(value, in_var=inp, in_channels=in_channels)
                args.append(
                    text if keyword_ is None else f"{renamed.get(keyword_, keyword_)}={text}"
                )
            args.append(f"name={self.name_text(ctx.prefix, '')}")
            return _call_statement(out, self.w.functions[id(cls)], args, ctx.indent, comment)
        lines: list[str] = []
        current = inp
        for u in body.units:
            local = self.local(u)
            lines += self.unit(u, ctx, [current], out, local)
            current = out
        return lines

    def repeat(self, unit: Unit, ctx: _Ctx, inp: str, out: str, local: str) -> list[str]:
        pad = INDENT * ctx.indent
        in_channels = channels_of(unit.scope.in_shape).expr if unit.scope.in_shape else None
        count = self.expr(unit.count, in_var=inp, in_channels=in_channels)
        lines: list[str] = []
        if inp != out:
            lines.append(f"{pad}{out} = {inp}")
        if unit.body is None:
            if isinstance(unit.count, Const) and unit.count.value == 0:
                return lines + [f"{pad}# {local or 'repeat'}: repeated 0 times"]
            return lines + [
                f"{pad}if {count}:",
                *refuse_other_values(f"{count} == 0 repetitions", ctx.indent + 1),
            ]
        index = fresh_name("i" if self.loop_depth == 0 else "j", self.taken, numbered=True)
        position = index  # layer names count iterations from 0, like the IR's ids
        if unit.index is not None:  # `[body for i in range(a, b)]`: loop over the DSL's index
            symbol, start, stop = unit.index
            index = self.renames[symbol].name if symbol in self.renames else symbol.lstrip("#")
            self.taken.add(index)
            start_text = self.expr(start, in_var=inp, in_channels=in_channels)
            stop_text = self.expr(stop, in_var=inp, in_channels=in_channels)
            count = stop_text if start_text == "0" else f"{start_text}, {stop_text}"
            position = index if start_text == "0" else f"{index} - {start_text}"
        loop_symbol = unit.loop_var
        self.channel_vars[loop_symbol] = self.channel_vars.get(
            loop_symbol, fresh_name("channels", set(self.taken), numbered=True)
        )
        prefix = ctx.prefix + ((("lit", local),) if local else ()) + (("expr", position),)
        inner = _Ctx(prefix, ctx.indent + 1)
        self.loop_depth += 1
        outer_uses, self.var_uses = self.var_uses, set()
        body = self._body(unit.body, inner, out, out, Sym(loop_symbol), self._comment(unit))
        used, self.var_uses = self.var_uses, outer_uses | (self.var_uses - {loop_symbol})
        self.loop_depth -= 1
        self.taken.discard(index)
        if loop_symbol in used:
            var = self.channel_vars[loop_symbol]
            self.taken.add(var)
            body.insert(0, f"{inner.indent * INDENT}{var} = {out}.shape[-1]")
        return lines + [f"{pad}for {index} in range({count}):"] + body

    def cond(self, unit: Unit, ctx: _Ctx, inp: str, out: str, local: str) -> list[str]:
        pad = INDENT * ctx.indent
        in_channels = channels_of(unit.scope.in_shape).expr if unit.scope.in_shape else None
        prefix = ctx.prefix + ((("lit", local),) if local else ())
        inner = _Ctx(prefix, ctx.indent + 1)
        cond = unit.cond

        def text(e: Expr) -> str:
            return self.expr(e, in_var=inp, in_channels=in_channels)

        if len(unit.branches) == 2:
            comment = self._comment(unit)
            yes = self._body(unit.branches[True], inner, inp, out, in_channels, comment)
            no = self._body(unit.branches[False], inner, inp, out, in_channels, comment)
            if not yes:
                return [f"{pad}if {text(_negate(cond))}:"] + no
            if not no:
                return [f"{pad}if {text(cond)}:"] + yes
            return [f"{pad}if {text(cond)}:"] + yes + [f"{pad}else:"] + no
        ((taken, body),) = unit.branches.items()
        test = _negate(cond) if taken else cond
        lines = [f"{pad}if {text(test)}:"]
        lines += refuse_other_values(f"({text(cond)}) == {taken}", ctx.indent + 1)
        same = _Ctx(prefix, ctx.indent)
        return lines + self._body(body, same, inp, out, in_channels, self._comment(unit))

    def module(self, unit: Unit, ctx: _Ctx, inp: str, out: str, local: str) -> list[str]:
        in_channels = (
            channels_of(unit.scope.in_shape).expr if unit.scope and unit.scope.in_shape else None
        )
        if unit.scope is not None and unit.scope.kind == "repeat":
            # iterations that differ: written out one after another
            lines: list[str] = []
            current = inp
            repeat_name = unit.scope.name if not unit.scope.name.isdigit() else ""
            base = ctx.prefix + ((("lit", repeat_name),) if repeat_name else ())
            for i, u in enumerate(unit.body.units):
                it_ctx = _Ctx(base + (("lit", str(i)),), ctx.indent)
                if u.kind == "module" and u.scope is None:
                    lines += self._body(u.body, it_ctx, current, out, None)
                else:
                    lines += self.unit(u, it_ctx, [current], out, "")
                current = out
            if not lines and inp != out:
                lines.append(f"{INDENT * ctx.indent}{out} = {inp}")
            return lines
        prefix = ctx.prefix + ((("lit", local),) if local else ())
        return self._body(
            unit.body, _Ctx(prefix, ctx.indent), inp, out, in_channels, self._comment(unit)
        )


def _call_values(cls: ClassModel, args: list) -> list:
    """A call's arguments that a builder function takes: not the channels of its input or
    of its tensor parameters (the function reads them from the tensors)."""
    skip = int(cls.uses_in_channels) + sum(1 for p in cls.params if p.tensor)
    return args[skip:]


def _ratio(shapes: list, i: int) -> str:
    letter = "N" if len(shapes[0][0]) < 3 else "HW"[i - 1] if i <= 2 else "?"
    pairs = set()
    for values, _, owner in shapes:
        if not owner.in_shape or len(owner.in_shape) <= i:
            return "?"
        pairs.add((values[i], int(owner.in_shape[i].value)))
    if all(o == n for o, n in pairs):
        return letter
    ratios = {n / o if o else 0 for o, n in pairs}
    if len(ratios) == 1:
        r = ratios.pop()
        if r == int(r) and r > 1:
            return f"{letter}/{int(r)}"
    return "?"


# ---- op -> Keras layers: the Keras backend's table ------------------------------------------


class _LayerCall:
    """What an entry of LAYERS needs: the representative node and every instance it stands
    for, the input variable, and the attribute values as Python text in the function."""

    def __init__(
        self, fn: _Function, node: Node, nodes: list[Node], inp: str, like: str | None = None
    ) -> None:
        self.fn = fn
        self.node = node
        self.nodes = nodes
        self.a = node.attrs
        self.inp = inp
        self.like = like  # the variable of the tensor a `size=x` reads (its static shape)
        self.channels = channels_of(node.in_shapes[0]).expr if node.in_shapes else None

    def e(self, value) -> str:
        return self.fn.expr(value, in_var=self.inp, in_channels=self.channels)

    def kw(self, name: str, value, default) -> list[str]:
        """`name=value`, or nothing where the value is the default."""
        return [] if is_default(value, default) else [f"{name}={self.e(value)}"]

    def helper(self, name: str) -> str:
        """A class or function from templates/keras/helpers/, written into the file once."""
        self.fn.w.helpers.add(name)
        return name


def _one(cls: str, *args: str):
    """An op that is one Keras layer with fixed arguments."""
    return lambda c: [(cls, list(args), "", None)]


def _with_arg(cls: str, arg: str, keyword: str = "", default=None, helper: bool = False):
    """An op that is one Keras layer taking one DSL argument (by keyword when it has one)."""

    def emit(c: _LayerCall) -> list:
        value = c.a[arg]
        if default is not None:
            args = c.kw(keyword, value, default)
        else:
            args = [f"{keyword}={c.e(value)}" if keyword else c.e(value)]
        return [(c.helper(cls) if helper else cls, args, "", None)]

    return emit


def _activation(name: str):
    return _one("layers.Activation", fmt.py_str(name))


def _conv(c: _LayerCall) -> list:
    op, a, e, kw = c.node.op, c.a, c.e, c.kw
    mode = conv_padding(c.nodes)
    subsample = op == "conv" and any(strides_and_dilates(n) for n in c.nodes)
    calls = []
    if mode == "explicit":
        calls.append(("layers.ZeroPadding2D", [f"padding={e(a['p'])}"], "_pad", None))
    if op == "conv":
        args = [e(a["c"]), e(a["k"])]
        cls = "layers.Conv2D"
    elif op == "dwconv":
        args = [e(a["k"])]
        cls = "layers.DepthwiseConv2D"
    else:
        args = [e(a["c"]), e(a["k"])]
        cls = "layers.SeparableConv2D"
    if not subsample:
        args += kw("strides", a["s"], 1)
    if mode == "same":
        args.append('padding="same"')
    if op != "conv":
        args += kw("depth_multiplier", a["m"], 1)
    args += kw("dilation_rate", a["d"], 1)
    if op == "conv":
        args += kw("groups", a["g"], 1)
    if not is_default(a["bias"], True):
        args.append(f"use_bias={e(a['bias'])}")
    args += _conv_inits(c)
    if subsample:
        # a dilated conv at stride 1, then every s-th position: the strided result
        return calls + [
            (cls, args, "_dilated", None),
            ("layers.MaxPooling2D", ["1", f"strides={e(a['s'])}"], "", None),
        ]
    return calls + [(cls, args, "", None)]


def _conv_inits(c: _LayerCall) -> list[str]:
    a = c.a
    if c.node.op == "conv":  # fan_in: in_channels / groups x kh x kw
        fan_in = _times_area(binary("//", c.channels, expr_of(a["g"])), a["k"])
        return _init_args(c, _WEIGHTED, fan_in)
    depthwise = _Slot("depthwise_initializer", "depthwise")
    if c.node.op == "dwconv":  # PyTorch's weight (C*m, 1, kh, kw): fan_in = kh x kw
        return _init_args(c, {"weight": depthwise, "bias": _BIAS}, _times_area(Const(1), a["k"]))
    slots = {  # sepconv: the pointwise conv's bias reads its fan_in, C*m
        "depthwise.weight": depthwise,
        "pointwise.weight": _Slot("pointwise_initializer"),
        "pointwise.bias": _BIAS,
    }
    return _init_args(c, slots, binary("*", c.channels, expr_of(a["m"])))


def _pool(c: _LayerCall) -> list:
    op, a, e, nodes = c.node.op, c.a, c.e, c.nodes
    for n in nodes:
        if op == "maxpool" and max(pair_values(n.value("d"))) > 1:
            raise NetdslError(
                "Keras' pooling layers have no dilation",
                n.span,
                hint="use d=1 for a Keras model; the torch target supports it",
            )
    pools = [pool_windows(n) for n in nodes]
    count_pad = [bool(n.value("count_pad")) if op == "avgpool" else False for n in nodes]
    cls = "layers.MaxPooling2D" if op == "maxpool" else "layers.AveragePooling2D"
    args = [e(a["k"])]
    if e(a["s"]) != e(a["k"]):
        args.append(f"strides={e(a['s'])}")
    if all(p.zero for p in pools):
        return [(cls, args, "", None)]
    if op == "maxpool":
        if all(p.tf_same for p in pools):
            return [(cls, args + ['padding="same"'], "", None)]
        padding = _padding_arg(c, pools)
        if all(c.fn.w.nonneg(n.inputs[0]) for n in nodes):
            pad_layer = "layers.ZeroPadding2D"
        else:
            pad_layer = c.helper("MaxPoolPadding2D")
        return [(pad_layer, [f"padding={padding}"], "_pad", None), (cls, args, "", None)]
    # average pooling: Keras divides "valid" windows by k*k and "same" ones by the
    # number of input values they cover
    if all(p.tf_same and (not cp or p.explicit == (0, 0)) for p, cp in zip(pools, count_pad)):
        return [(cls, args + ['padding="same"'], "", None)]
    if all(p.extra == (0, 0) and (cp or p.explicit == (0, 0)) for p, cp in zip(pools, count_pad)):
        padding = _padding_arg(c, pools)
        return [
            ("layers.ZeroPadding2D", [f"padding={padding}"], "_pad", None),
            (cls, args, "", None),
        ]
    cls = c.helper("PaddedAveragePooling2D")
    padding = _padding_arg(c, pools)
    if all(count_pad):
        counted = f"counted={e(a['p'])}"
    elif not any(count_pad):
        counted = "counted=0"
    else:
        counted = f"counted={e(a['p'])} if {e(a['count_pad'])} else 0"
    return [(cls, [e(a["k"]), e(a["s"]), f"padding={padding}", counted], "", None)]


def _padding_arg(c: _LayerCall, pools: list[PoolWindows]) -> str:
    """The pooling's padding: its `p` when ceil mode adds nothing, else ((t, b), (l, r))."""
    a, e = c.a, c.e
    if all(p.extra == (0, 0) for p in pools):
        return e(a["p"])
    first = pools[0].pads
    if all(p.pads == first for p in pools):
        (t, b), (l_, r) = first
        return f"(({t}, {b}), ({l_}, {r}))"
    c.helper("ceil_mode_padding")
    kh, kw_ = pair(a["k"])
    sh, sw = pair(a["s"])
    ph, pw = pair(a["p"])
    return (
        f"(ceil_mode_padding({c.inp}.shape[1], {e(kh)}, {e(sh)}, {e(ph)}), "
        f"ceil_mode_padding({c.inp}.shape[2], {e(kw_)}, {e(sw)}, {e(pw)}))"
    )


def _adaptive_pool(c: _LayerCall) -> list:
    windows = set()
    for n in c.nodes:
        _, h, w = (int(d.value) for d in n.in_shapes[0])
        _, oh, ow = n.out_shape
        windows.add((h // oh, w // ow) if h % oh == 0 and w % ow == 0 else None)
    average = c.node.op == "adaptive_avgpool"
    if len(windows) == 1 and None not in windows:
        ((wh, ww),) = windows
        cls = "layers.AveragePooling2D" if average else "layers.MaxPooling2D"
        return [(cls, [fmt.literal(wh if wh == ww else (wh, ww))], "", None)]
    # windows of different sizes (PyTorch's rule): Keras' adaptive pooling layers
    cls = "layers.AdaptiveAveragePooling2D" if average else "layers.AdaptiveMaxPooling2D"
    return [(cls, [c.e(c.a["size"])], "", None)]


def _fc(c: _LayerCall) -> list:
    if c.a.get("tie") is not None:  # the embedding's table, transposed; a bias of its own
        if is_default(c.a["bias"], False):
            return [("", [], "", _TIED)]
        # its bias reads the table's fan_in, D (PyTorch's Linear weight is the (V, D) table)
        bias = _init_args(c, {"bias": _Slot("initializer", "vector", _ZEROS)}, c.channels)
        if not is_default(c.a["bias"], True):
            raise NetdslError(
                "the keras backend cannot tie an fc whose bias is an expression: its bias is "
                "a layer of its own, there or not",
                c.node.span,
                hint="write bias=true or bias=false; the torch target supports it",
            )
        return [("", [], "", _TIED), (c.helper("Bias"), bias, "", None)]
    calls = []
    if len(c.node.in_shapes[0]) == 3:
        calls.append(("layers.Flatten", [], "_flatten", None))
    args = [c.e(c.a["n"])]
    if not is_default(c.a["bias"], True):
        args.append(f"use_bias={c.e(c.a['bias'])}")
    fan_in = _flat_fan_in(c) if calls else c.channels  # (features, or a token's D)
    return calls + [("layers.Dense", args + _init_args(c, _WEIGHTED, fan_in), "", None)]


def _pointwise_fc(c: _LayerCall) -> list:
    """Dense acts on the last axis: at every position of NHWC."""
    args = [c.e(c.a["n"])] + c.kw("use_bias", c.a["bias"], True)
    return [("layers.Dense", args + _init_args(c, _WEIGHTED, c.channels), "", None)]


def _flatten(c: _LayerCall) -> list:
    if len(c.node.in_shapes[0]) < 3:  # features, or tokens (N, D): n * D + d in both
        return [("layers.Flatten", [], "", None)]
    calls = []
    if any(n.in_shapes[0][1].value * n.in_shapes[0][2].value > 1 for n in c.nodes):
        # PyTorch flattens C, H, W; Keras would flatten H, W, C
        calls.append(("layers.Permute", ["(3, 1, 2)"], "_permute", None))
    return calls + [("layers.Flatten", [], "", None)]


def _bn(c: _LayerCall) -> list:
    a, e = c.a, c.e
    args = [f"epsilon={e(a['eps'])}", f"momentum={_momentum(a['momentum'], e)}"]
    if not is_default(a["scale"], True):
        args.append(f"scale={e(a['scale'])}")
    return [("layers.BatchNormalization", args + _init_args(c, _NORM), "", None)]


def _layernorm(c: _LayerCall) -> list:
    args = [f"epsilon={c.e(c.a['eps'])}"] + _init_args(c, _NORM)
    return [("layers.LayerNormalization", args, "", None)]


def _momentum(m, e) -> str:
    """Keras' momentum is the weight of the old statistics: 1 - PyTorch's."""
    if isinstance(m, Num) and m.is_const:
        return repr(round(1.0 - float(m.value), 12))
    return e(binary("-", Const(1), expr_of(m)))


def _groupnorm(c: _LayerCall) -> list:
    args = [f"groups={c.e(c.a['g'])}", f"epsilon={c.e(c.a['eps'])}"]
    return [("layers.GroupNormalization", args + _init_args(c, _NORM), "", None)]


def _instancenorm(c: _LayerCall) -> list:
    """One group per channel: each channel normalised over its positions."""
    a, e = c.a, c.e
    args = [f"groups={e(a['num_features'])}", f"epsilon={e(a['eps'])}"]
    if not is_default(a["affine"], True):
        args += [f"center={e(a['affine'])}", f"scale={e(a['affine'])}"]
    return [("layers.GroupNormalization", args + _init_args(c, _NORM), "", None)]


def _lrn(c: _LayerCall) -> list:
    a, e = c.a, c.e
    args = [e(a["n"]), f"alpha={e(a['alpha'])}", f"beta={e(a['beta'])}", f"k={e(a['k'])}"]
    return [(c.helper("LocalResponseNorm"), args, "", None)]


def _zeropad(c: _LayerCall) -> list:
    p, e = c.a["p"], c.e
    if isinstance(p, Num) or (isinstance(p, Tup) and len(p) == 2):
        return [("layers.ZeroPadding2D", [f"padding={e(p)}"], "", None)]
    left, right, top, bottom = zeropad_sides(p)
    padding = f"(({e(top)}, {e(bottom)}), ({e(left)}, {e(right)}))"
    return [("layers.ZeroPadding2D", [f"padding={padding}"], "", None)]


def _crop(c: _LayerCall) -> list:
    if c.a.get("size") is not None:  # the center, as large as another tensor (static shapes)
        cropping = f"{c.helper('center_cropping')}({c.inp}, {c.like})"
        return [("layers.Cropping2D", [cropping], "", None)]
    p, e = c.a["p"], c.e
    if isinstance(p, Num) or (isinstance(p, Tup) and len(p) == 2):
        return [("layers.Cropping2D", [f"cropping={e(p)}"], "", None)]
    left, right, top, bottom = zeropad_sides(p)
    cropping = f"(({e(top)}, {e(bottom)}), ({e(left)}, {e(right)}))"
    return [("layers.Cropping2D", [f"cropping={cropping}"], "", None)]


def _conv_transpose(c: _LayerCall) -> list:
    """Conv2DTranspose: "same" where TensorFlow crops what PyTorch's padding removes, else
    the full ("valid") transposed conv, then PyTorch's padding cropped from each side."""
    a, e, kw = c.a, c.e, c.kw
    same, narrow = True, False
    for n in c.nodes:
        names = ("k", "s", "p", "output_padding", "d")
        ks, ss, ps, ops_, ds = (pair_values(n.value(x)) for x in names)
        why = None
        if int(n.value("g")) > 1:
            why = "Keras' Conv2DTranspose has no groups"
        elif max(ss) > 1 and max(ds) > 1:
            why = "Keras' Conv2DTranspose cannot stride and dilate at once"
        elif any(op >= s for op, s in zip(ops_, ss)):
            why = "Keras' Conv2DTranspose needs output_padding smaller than the stride"
        if why:
            raise NetdslError(why, n.span, hint="the torch target supports it")
        same = same and all(
            op == 0 and d * (k - 1) + 1 - s == 2 * p for k, s, p, op, d in zip(ks, ss, ps, ops_, ds)
        )
        # a kernel narrower than the stride: without output_padding Keras' "valid" size is
        # in x s, not PyTorch's (in - 1) x s + k; with it (even 0) it is PyTorch's
        narrow = narrow or any(d * (k - 1) + 1 < s for k, s, d in zip(ks, ss, ds))
    args = [e(a["c"]), e(a["k"])] + kw("strides", a["s"], 1)
    if same:
        args.append('padding="same"')
    elif narrow:
        args.append(f"output_padding={e(a['output_padding'])}")
    else:
        args += kw("output_padding", a["output_padding"], 0)
    args += kw("dilation_rate", a["d"], 1)
    if not is_default(a["bias"], True):
        args.append(f"use_bias={e(a['bias'])}")
    # PyTorch's weight (c_in, c_out / g, kh, kw): fan_in = c_out / g x kh x kw
    fan_in = _times_area(binary("//", expr_of(a["c"]), expr_of(a["g"])), a["k"])
    args += _init_args(c, _WEIGHTED, fan_in)
    if same or all(pair_values(n.value("p")) == (0, 0) for n in c.nodes):
        return [("layers.Conv2DTranspose", args, "", None)]
    return [
        ("layers.Conv2DTranspose", args, "_full", None),
        ("layers.Cropping2D", [f"cropping={e(a['p'])}"], "", None),
    ]


def _upsample(c: _LayerCall) -> list:
    """UpSampling2D by an integer factor; Resizing to a size (TensorFlow's half-pixel
    bilinear is PyTorch's align_corners=False; its nearest is PyTorch's for whole factors)."""
    a, e = c.a, c.e
    for n in c.nodes:
        why = None
        if n.value("align_corners"):
            why = "Keras' resizing layers have no align_corners=true"
        elif n.attrs.get("size") is not None and n.attrs["mode"] == "nearest":
            _, h, w = (int(d.value) for d in n.in_shapes[0])
            _, oh, ow = n.out_shape
            if oh % h or ow % w:
                why = (
                    f"Keras' nearest resizing picks other pixels than PyTorch's when the size "
                    f"{oh}x{ow} is not a whole multiple of the input's {h}x{w}"
                )
        if why:
            raise NetdslError(why, n.span, hint="the torch target supports it")
    mode = [] if a["mode"] == "nearest" else [f"interpolation={fmt.py_str(a['mode'])}"]
    if a.get("scale") is not None:
        return [("layers.UpSampling2D", [e(a["scale"]), *mode], "", None)]
    nearest = [] if a["mode"] != "nearest" else ['interpolation="nearest"']
    if isinstance(a["size"], TensorSize):  # another tensor's height and width (static)
        return [
            ("layers.Resizing", [f"{c.like}.shape[1]", f"{c.like}.shape[2]", *nearest], "", None)
        ]
    h, w = pair(a["size"])
    return [("layers.Resizing", [e(h), e(w), *nearest], "", None)]


# ---- tokens: (batch, N, D), PyTorch's batch-first layout, so no layout change --------------


def _tokens(c: _LayerCall) -> list:
    """(H, W, C) to (H x W, C): NHWC's row-major positions are PyTorch's flatten(2) order."""
    return [("layers.Reshape", [f"(-1, {c.e(c.channels)})"], "", None)]


def _image(c: _LayerCall) -> list:
    """(N, D) to (h, w, D): token i * w + j to row i, column j (PyTorch's transpose(1, 2)
    and reshape to D x h x w)."""
    a, e, inp = c.a, c.e, c.inp
    grids = {tuple(n.out_shape[1:]) for n in c.nodes}
    same = len(grids) == 1
    ((h, w),) = grids if same else ((None, None),)
    if a["h"] is not None:
        h_text = e(a["h"])
    elif same:
        h_text = str(h)
    elif a["w"] is not None:
        h_text = e(a["w"])  # (h = w where only w is given)
    else:
        h_text = f"round({inp}.shape[1] ** 0.5)"  # a square grid
    if a["w"] is not None:
        w_text = e(a["w"])
    elif same:
        w_text = str(w)
    else:
        w_text = f"{inp}.shape[1] // {h_text}"
    return [("layers.Reshape", [f"({h_text}, {w_text}, -1)"], "", None)]


def _patch_embed(c: _LayerCall) -> list:
    """A conv with kernel = stride = p, then its positions as tokens (torchvision's
    conv_proj, then flatten(2).transpose(1, 2))."""
    a, e = c.a, c.e
    args = [e(a["d"]), e(a["p"]), f"strides={e(a['p'])}"]
    if not is_default(a["bias"], True):
        args.append(f"use_bias={e(a['bias'])}")
    args += _init_args(c, _WEIGHTED, _times_area(c.channels, a["p"]))
    return [
        ("layers.Conv2D", args, "_conv", None),
        ("layers.Reshape", [f"(-1, {e(a['d'])})"], "", None),
    ]


def _attention(c: _LayerCall) -> list:
    """Keras' MultiHeadAttention on (x, x, x): the same projections, scaling, softmax and
    dropout as nn.MultiheadAttention (weights converted by netdsl.weights)."""
    a, e = c.a, c.e
    for n in c.nodes:
        tokens, d = (int(x.value) for x in n.in_shapes[0])
        if d == int(n.value("heads")) == tokens > 1 and n.value("bias") is not False:
            # keras.ops.add on TensorFlow takes a (heads, 1) bias for a bias_add along the
            # axis of that length: the tokens' (Keras 3.15's EinsumDense projections)
            raise NetdslError(
                "Keras (TensorFlow backend) adds this attention's projection biases along "
                "the tokens: each head has one feature and there are as many tokens as heads",
                n.span,
                hint="use fewer heads (a head dim of 2 or more), or bias=false; the torch "
                "target supports it",
            )
    heads = e(a["heads"])
    dims = {int(n.in_shapes[0][1].value) for n in c.nodes}
    if heads.isdigit() and len(dims) == 1:
        key_dim = str(dims.pop() // int(heads))
    else:  # D / heads, D read from the tokens
        key_dim = f"{c.inp}.shape[-1] // {heads}"
    args = [heads, key_dim]
    args += c.kw("dropout", a["dropout"], 0.0)
    args += c.kw("use_bias", a["bias"], True)
    args += c.kw("causal", a["causal"], False)
    # SelfAttention draws on PyTorch's shapes (in_proj (3D, D), out_proj (D, D)) and
    # defaults to nn.MultiheadAttention's inits; its keywords are the DSL's: init sets both
    # kernels unless out_init sets the output's, bias_init every bias
    keywords = (
        ("kernel_initializer", "init", "attention"),
        ("output_kernel_initializer", "out_init", "attention"),
        ("bias_initializer", "bias_init", "vector"),
    )
    for keyword, arg, layout in keywords:
        written = initializers.coerce(a.get(arg))
        if written is not None and c.node.in_shapes:
            args.append(f"{keyword}={_initializer(c, written, layout, c.channels)}")
    return [(c.helper("SelfAttention"), args, "", None)]


def _cls_token(c: _LayerCall) -> list:
    args = c.kw("n", c.a["n"], 1) + _init_args(c, {"token": _Slot("initializer", "tokens", None)})
    return [(c.helper("ClassToken"), args, "", None)]


def _pos_embed(c: _LayerCall) -> list:
    args = _init_args(c, {"embedding": _Slot("initializer", "tokens", None)})
    return [(c.helper("PositionEmbedding"), args, "", None)]


def _token_pool(c: _LayerCall) -> list:
    if c.a["mode"] == "mean":
        return [("layers.GlobalAveragePooling1D", [], "", None)]
    return [(c.helper("FirstToken"), [], "", None)]


def _gelu(c: _LayerCall) -> list:
    if is_default(c.a["approximate"], False):
        return [("layers.Activation", ['"gelu"'], "", None)]
    return [(c.helper("GELU"), [f"approximate={c.e(c.a['approximate'])}"], "", None)]


def _embedding(c: _LayerCall) -> list:
    a, e = c.a, c.e
    args = [e(a["vocab"]), e(a["d"])]
    args += _init_args(c, {"weight": _Slot("embeddings_initializer", "embedding", _UNIFORM)})
    if c.fn.w.tied(c.nodes):  # an fc projects back with its table: the layer is kept
        return [("layers.ReversibleEmbedding", args, "", _TABLE)]
    return [("layers.Embedding", args, "", None)]


# ---- initial weights: each tensor's init (netdsl.initializers) as Keras initializers ----------

_K = "keras.initializers."
_ZEROS, _ONES = initializers.named("zeros"), initializers.named("ones")
_GLOROT = initializers.named("glorot_uniform")  # Keras' kernels' own
_NAMED = {  # Keras' own spelling of Keras' named initializers
    "glorot_uniform": "GlorotUniform",
    "glorot_normal": "GlorotNormal",
    "he_uniform": "HeUniform",
    "he_normal": "HeNormal",
    "lecun_uniform": "LecunUniform",
    "lecun_normal": "LecunNormal",
}
# gain^2 of torch.nn.init.calculate_gain (leaky_relu's reads its slope a)
_GAIN_SQUARED = {"linear": 1.0, "sigmoid": 1.0, "tanh": 25 / 9, "relu": 2.0, "selu": 9 / 16}


@dataclass(frozen=True)
class _Slot:
    """Where one of an op's tensors (a role of initializers.TENSORS) goes in Keras: the
    keyword that sets it, the Keras layout (kernel: Keras counts PyTorch's fans;
    depthwise, embedding, tokens: it does not; attention: SelfAttention draws on
    PyTorch's shapes; vector), and the Keras layer's own init (None: the layer is a
    netdsl helper whose default is PyTorch's)."""

    keyword: str
    layout: str = "kernel"
    keras_default: Init | None = _GLOROT


_KERNEL = _Slot("kernel_initializer")
_BIAS = _Slot("bias_initializer", "vector", _ZEROS)
_WEIGHTED = {"weight": _KERNEL, "bias": _BIAS}
_UNIFORM = initializers.make("uniform", [(Num(-0.05), None), (Num(0.05), None)], [], None)
_NORM = {
    "weight": _Slot("gamma_initializer", "vector", _ONES),
    "bias": _Slot("beta_initializer", "vector", _ZEROS),
}


def _init_args(c: _LayerCall, slots: dict[str, _Slot], fan_in: Expr | str | None = None) -> list:
    """`kernel_initializer=...` and the like for the layer's tensors: each one's init where
    the file writes it or the Keras layer would start otherwise. `fan_in` is the weight's
    (PyTorch's count), for a bias that reads it (torch_default)."""
    if not c.node.in_shapes:  # a stand-in for a layer value (activations: no weights)
        return []
    found: dict[str, initializers.Resolved] = {}
    for n in c.nodes:  # (a bias=b may leave the first instance without its bias)
        for r in initializers.resolve(n):
            found.setdefault(r.tensor.role, r)
    args: list[str] = []
    for role, slot in slots.items():
        r = found.get(role)
        if r is None or (not r.written and (slot.keras_default in (None, r.init))):
            continue
        arg = f"{slot.keyword}={_initializer(c, r.init, slot.layout, fan_in)}"
        if arg not in args:  # (attention: one keyword for both projections)
            args.append(arg)
    return args


def _initializer(c: _LayerCall, init: Init, layout: str, fan_in: Expr | str | None) -> str:
    """A Keras initializer drawing what `init` draws on a tensor of this layout."""
    f, e = init.family, c.e
    if f in ("zeros", "ones", "constant"):
        value = init["value"] if f == "constant" else Num(0 if f == "zeros" else 1)
        if value.is_const and not isinstance(value.value, bool) and value.value in (0, 1):
            return f"{_K}{'Ones' if value.value == 1 else 'Zeros'}()"
        return f"{_K}Constant({e(value)})"
    if f == "normal":
        args = [] if _is_zero(init["mean"]) else [f"mean={e(init['mean'])}"]
        args.append(f"stddev={e(init['std'])}")
        return f"{_K}RandomNormal({', '.join(args)})"
    if f == "uniform":
        return f"{_K}RandomUniform(minval={e(init['a'])}, maxval={e(init['b'])})"
    if f == "trunc_normal":
        mean, std, a, b = (init[k] for k in ("mean", "std", "a", "b"))
        args = [] if _is_zero(mean) else [f"mean={e(mean)}"]
        args.append(f"stddev={e(std)}")
        bounds = (mean, std, a, b)
        if all(x.is_const for x in bounds) and _two_std(*(float(x.value) for x in bounds)):
            return f"{_K}TruncatedNormal({', '.join(args)})"  # (Keras cuts at 2 std)
        args += [f"a={e(a)}", f"b={e(b)}"]
        return f"{c.helper('TruncNormal')}({', '.join(args)})"
    if f == "torch_default" and layout == "vector":  # a bias: U(+-1/sqrt(the weight's fan_in))
        text = fan_in if isinstance(fan_in, str) else e(fan_in)
        return f"{c.helper('FanInUniform')}({text})"
    text = _fan_based(c, init)
    if layout in ("depthwise", "embedding", "tokens"):  # Keras would count other fans
        return f"{c.helper('TorchFans')}({text}, {fmt.py_str(layout)})"
    return text


def _is_zero(value: Num) -> bool:
    return value.is_const and value.value == 0


def _two_std(mean: float, std: float, a: float, b: float) -> bool:
    """Whether [a, b] is mean +- 2 std, where Keras' TruncatedNormal redraws."""
    return abs(a - (mean - 2 * std)) <= 1e-12 * std and abs(b - (mean + 2 * std)) <= 1e-12 * std


def _fan_based(c: _LayerCall, init: Init) -> str:
    """A family that reads the fans: Keras' VarianceScaling (or a named form of it), or
    Orthogonal. Keras counts the fans of the layout it is given."""
    f = init.family
    if f in _NAMED:
        return f"{_K}{_NAMED[f]}()"
    if f == "orthogonal":
        gain = init["gain"]
        return f"{_K}Orthogonal({'' if _is_one(gain) else f'gain={c.e(gain)}'})"
    if f == "torch_default":  # kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in))
        return _variance_scaling("1 / 3", "fan_in", "uniform")
    if f == "variance_scaling":
        word = init.value("distribution")
        return _variance_scaling(c.e(init["scale"]), init.value("mode"), _keras_distribution(word))
    if f in ("xavier_uniform", "xavier_normal"):
        gain = init["gain"]
        if f == "xavier_uniform" and _is_one(gain):
            return f"{_K}GlorotUniform()"
        scale = _squared(c, gain)
        kind = "uniform" if f == "xavier_uniform" else "untruncated_normal"
        return _variance_scaling(scale, "fan_avg", kind)
    # kaiming_uniform, kaiming_normal
    mode, nonlinearity, a = init.value("mode"), init.value("nonlinearity"), init["a"]
    if nonlinearity == "leaky_relu":
        if a.is_const:
            scale = _number(2 / (1 + a.value**2))
        else:
            squared = binary("**", a.expr, Const(2))
            scale = c.e(binary("/", Const(2), binary("+", Const(1), squared)))
    else:
        scale = _number(_GAIN_SQUARED[nonlinearity])
    if f == "kaiming_uniform":
        if mode == "fan_in" and scale == "2.0":
            return f"{_K}HeUniform()"
        return _variance_scaling(scale, mode, "uniform")
    return _variance_scaling(scale, mode, "untruncated_normal")


def _variance_scaling(scale: str, mode: str, distribution: str) -> str:
    return f'{_K}VarianceScaling(scale={scale}, mode="{mode}", distribution="{distribution}")'


@cache
def _keras_distribution(word: str) -> str:
    """The Keras word for what netdsl's variance_scaling(distribution=word) draws."""
    init = initializers.make("variance_scaling", [], [("distribution", word, None)], None)
    kind = initializers.distribution(init, 1, 1).kind
    return {"normal": "untruncated_normal", "trunc_normal": "truncated_normal"}.get(kind, kind)


def _is_one(value: Num) -> bool:
    return value.is_const and value.value == 1


def _squared(c: _LayerCall, value: Num) -> str:
    if value.is_const:
        return _number(float(value.value) ** 2)
    return c.e(binary("**", value.expr, Const(2)))


def _number(x: float) -> str:
    """A float as the generated code writes it: 2.0, 0.5625, 1 / 3."""
    text = repr(float(x))
    if len(text) <= 8:
        return text
    fraction = Fraction(x).limit_denominator(100)
    if fraction.denominator > 1 and abs(float(fraction) - x) <= 1e-15 * abs(x):
        return f"{fraction.numerator} / {fraction.denominator}"
    return text


def _times_area(e: Expr, k) -> Expr:
    """e x kh x kw, for a kernel size k (a number or a pair)."""
    kh, kw = (expr_of(x) for x in k.items) if isinstance(k, Tup) else (expr_of(k),) * 2
    return binary("*", binary("*", e, kh), kw)


def _flat_fan_in(c: _LayerCall) -> Expr | str:
    """C x H x W of an fc's image input: its features once flattened."""
    dims = [expr_of(d) for d in c.node.in_shapes[0]]
    total = binary("*", binary("*", dims[0], dims[1]), dims[2])
    values = {tuple(int(d.value) for d in n.in_shapes[0]) for n in c.nodes}
    if len(values) > 1 and not total.symbols:  # instances of other sizes: read the input
        return " * ".join(f"{c.inp}.shape[{i}]" for i in (1, 2, 3))
    return total


LAYERS = {
    "conv": _conv,
    "dwconv": _conv,
    "sepconv": _conv,
    "maxpool": _pool,
    "avgpool": _pool,
    "gap": _one("layers.GlobalAveragePooling2D", "keepdims=True"),
    "gmp": _one("layers.GlobalMaxPooling2D", "keepdims=True"),
    "adaptive_avgpool": _adaptive_pool,
    "adaptive_maxpool": _adaptive_pool,
    "fc": _fc,
    "flatten": _flatten,
    "bn": _bn,
    "layernorm": _layernorm,
    "groupnorm": _groupnorm,
    "instancenorm": _instancenorm,
    "layer_scale": _with_arg("LayerScale", "init", "init_value", 1e-6, helper=True),
    "pointwise_fc": _pointwise_fc,
    "lrn": _lrn,
    "dropout": _with_arg("layers.Dropout", "p"),
    "drop_path": _with_arg("DropPath", "p", helper=True),
    "zeropad": _zeropad,
    "crop": _crop,
    "chunk": lambda c: [(c.helper("Chunk"), [c.e(c.a["n"]), c.e(c.a["i"])], "", None)],
    "channels": lambda c: [
        (c.helper("ChannelSlice"), [c.e(c.a["start"]), c.e(c.a["stop"])], "", None)
    ],
    "conv_transpose": _conv_transpose,
    "upsample": _upsample,
    "pixel_shuffle": _with_arg("PixelShuffle", "r", helper=True),
    "pixel_unshuffle": _with_arg("PixelUnshuffle", "r", helper=True),
    "shuffle": _with_arg("ChannelShuffle", "g", helper=True),
    "scale": _with_arg("layers.Rescaling", "s"),
    "softmax": _one("layers.Softmax", "axis=-1"),
    "relu": _one("layers.ReLU"),
    "relu6": _one("layers.ReLU", "6.0"),
    "leaky_relu": _with_arg("layers.LeakyReLU", "slope", "negative_slope"),
    "elu": _with_arg("layers.ELU", "alpha", "alpha", 1.0),
    "sigmoid": _activation("sigmoid"),
    "tanh": _activation("tanh"),
    "gelu": _gelu,
    "silu": _activation("silu"),
    "hardswish": _activation("hard_swish"),
    "hardsigmoid": _activation("hard_sigmoid"),
    "tokens": _tokens,
    "image": _image,
    "patch_embed": _patch_embed,
    "cls_token": _cls_token,
    "pos_embed": _pos_embed,
    "attention": _attention,
    "token_pool": _token_pool,
    "embedding": _embedding,
}
MERGES = {  # merge op -> (layer class, arguments)
    "concat": ("layers.Concatenate", ["axis=-1"]),
    "add": ("layers.Add", []),
    "mul": ("layers.Multiply", []),
    "mean": ("layers.Average", []),
}
UNSUPPORTED: dict[str, str] = {}  # op -> why Keras code cannot express it


class KerasEmitter(Emitter):
    """Functional Keras; train-time heads are built where they tap the network (DSL order)."""

    target = "keras"
    LAYERS = LAYERS
    MERGES = MERGES
    UNSUPPORTED = UNSUPPORTED

    def context(self, program: Program) -> FileContext:
        return _Writer(program, self).context()


# ---- statement layout (what `ruff format` would write) -----------------------------------


def _statement(
    target: str, func: str, args: list[str], trailer: str, indent: int, comment: str
) -> list[str]:
    """`target = func(args)(trailer)`, laid out the way ruff format lays it out."""
    pad = INDENT * indent
    inner = INDENT * (indent + 1)
    head = f"{pad}{target} = {func}({', '.join(args)})"
    one = f"{head}({trailer})"
    if len(one) <= LINE:
        return fmt.with_comment([one], comment, indent)
    joined = inner + ", ".join(args)
    tail = f"{pad})({trailer})"
    if len(head) + 1 > LINE and len(joined) <= LINE and len(tail) <= LINE:
        lines = [f"{pad}{target} = {func}(", joined, tail]
    else:
        # one argument per line; the trailing comma keeps ruff from joining them again
        args = [_laid_out(arg, indent + 1) for arg in args]
        lines = [f"{pad}{target} = {func}(", *fmt.argument_lines(args, indent + 1), tail]
        if len(tail) > LINE:
            raise NetdslError(f"cannot lay out a statement for {func}: its inputs are too long")
    return fmt.with_comment(lines, comment, indent)


def _call_statement(
    target: str, func: str, args: list[str], indent: int, comment: str
) -> list[str]:
    one = fmt.statement(f"{target} = ", func, args, indent)
    if len(one) > 1 and any(len(line) > LINE for line in one):
        one = fmt.statement(f"{target} = ", func, [_laid_out(a, indent + 1) for a in args], indent)
    return fmt.with_comment(one, comment, indent)


def _laid_out(arg: str, indent: int) -> str:
    """An argument at `indent` levels, one per line: a call too long for the line (an
    initializer: `kernel_initializer=keras.initializers.VarianceScaling(...)`) split
    inside its brackets as ruff splits it (lines joined by newlines, for
    fmt.argument_lines)."""
    if len(INDENT * indent + arg) + 1 <= LINE:
        return arg
    keyword = re.match(r"[A-Za-z_]\w*=(?!=)", arg)
    head = keyword.group(0) if keyword else ""
    value = arg[len(head) :]
    try:
        node = ast.parse(value, mode="eval").body
    except SyntaxError:
        return arg
    if not isinstance(node, ast.Call) or node.end_col_offset != len(value):
        return arg
    parts = [value[a.col_offset : a.end_col_offset] for a in (*node.args, *node.keywords)]
    if not parts:
        return arg
    inner = [_laid_out(part, indent + 1) for part in parts]
    # (the comma after it counts: fmt.argument_lines writes it)
    lines = fmt.statement(head, value[: node.func.end_col_offset], inner, indent, suffix=",")
    return "\n".join(lines).lstrip()[:-1]
