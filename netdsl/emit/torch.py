"""PyTorch backend: one nn.Module class per block definition, torchvision style.

Python decides every name, argument and statement here; the layout of the
file lives in templates/torch/*.j2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import __version__
from ..errors import NetdslError
from ..ir import Network, Node
from ..layers import pair, zeropad_sides
from ..symbolic import Const, Expr, Num, Sym, Tup
from . import format as fmt
from .base import Body, ClassModel, Emitter, Program, Unit, expr_of, shape_comment
from .templates import render

# ops whose module is stateless and may run in place when its input is not needed again
_INPLACE = {"relu", "relu6", "leaky_relu", "hardswish", "hardsigmoid", "silu", "elu"}
B = 2  # statements in __init__ and forward sit two levels deep


@dataclass
class ClassText:
    name: str
    doc: list[str]
    signature: list[str]  # the whole `def __init__(...)` line(s)
    init: list[str]
    forward_signature: str
    forward: list[str]
    kind: str


@dataclass
class FileContext:
    version: str
    source: str
    network: str
    input_shape: str
    input_shapes: str | None
    helpers: list[str]
    classes: list[ClassText]
    builder: list[str]
    builder_call: str
    main_class: str
    needs_functional: bool = False
    extra_imports: list[str] = field(default_factory=list)


class _Scope:
    """Rendering state of one class: how symbols print, which locals exist."""

    def __init__(self, cls: ClassModel) -> None:
        self.cls = cls
        self.renames = {k: Sym(v) for k, v in cls.renames.items()}
        self.declared_layers = False

    def expr(self, value) -> str:
        e = expr_of(value) if not isinstance(value, Expr) else value
        if self.renames:
            e = e.subst(self.renames)
        return e.render()


class TorchEmitter(Emitter):
    target = "torch"

    def emit_model(self, net: Network) -> str:
        program = self.program(net)
        return render("torch/model.py.j2", self.context(program))

    def emit_train(self, net: Network, model_module: str) -> str:
        from .torch_train import train_context

        return render("torch/train.py.j2", train_context(net, model_module))

    # -- context -------------------------------------------------------------------

    def context(self, program: Program) -> FileContext:
        net = program.network
        self.helpers: set[str] = set()
        classes = [self._class(c, program) for c in program.classes]
        main = program.main
        builder_params = [self._param_text(p) for p in main.params]
        builder_sig = fmt.statement("def build_model", "", builder_params, 0,
                                    suffix=f" -> {main.name}:")
        builder_sig = [line.replace("def build_model(", "def build_model(", 1) for line in
                       builder_sig]
        inputs = list(net.inputs.values())
        shapes = {name: node.out_shape for name, node in net.inputs.items()}
        return FileContext(
            version=__version__,
            source=fmt.comment_text(net.path),
            network=fmt.comment_text(net.name),
            input_shape=fmt.literal(inputs[0].out_shape),
            input_shapes=(", ".join(f"{fmt.py_str(k)}: {fmt.literal(v)}" for k, v in shapes.items())
                          if len(shapes) > 1 else None),
            helpers=sorted(self.helpers),
            classes=classes,
            builder=builder_sig,
            builder_call=fmt.call(main.name, [f"{p.name}={p.name}" for p in main.params]),
            main_class=main.name,
        )

    def _param_text(self, p) -> str:
        hint = _type_hint(p.value if p.value is not None else p.default)
        if p.computed is not None:
            return f"{p.name}: {hint} | None = None"
        if p.required:
            return f"{p.name}: {hint}"
        return f"{p.name}: {hint} = {fmt.literal(p.default)}"

    def _class(self, cls: ClassModel, program: Program) -> ClassText:
        scope = _Scope(cls)
        params = ["self"]
        if cls.uses_in_channels:
            params.append("in_channels: int")
        params += [self._param_text(p) for p in cls.params]
        signature = fmt.statement("def __init__", "", params, 1, suffix=" -> None:")
        init: list[str] = ["super().__init__()"]
        for p in cls.params:
            if p.computed is not None:
                init += [f"if {p.name} is None:", f"    {p.name} = {scope.expr(p.computed)}"]
        for name, value in cls.locals:
            init.append(f"{name} = {scope.expr(value)}")
        init = _indent(init, 2)
        for unit in cls.units:
            init += self._init_unit(unit, scope)
        forward = self._forward(cls, scope, program)
        args = ", ".join(f"{name}: Tensor" for name in cls.inputs)
        returns = "Tensor" if len([o for o in cls.outputs if not o[2]]) == 1 and not any(
            o[2] for o in cls.outputs) else "Tensor | tuple[Tensor, ...]"
        doc = self._doc(cls)
        return ClassText(cls.name, doc, signature, init,
                         f"def forward(self, {args}) -> {returns}:", _indent(forward, 2),
                         cls.kind)

    def _doc(self, cls: ClassModel) -> list[str]:
        if cls.kind == "network":
            lines = [f"The {cls.name} network, from:", ""]
        elif cls.kind == "block":
            many = f" ({cls.instances} instances)" if cls.instances > 1 else ""
            lines = [f"Block `{cls.block}`{many}:", ""]
        else:
            return ["A repeated or conditional part of its enclosing block."]
        return lines + fmt.docstring_text(cls.doc)

    # -- __init__ ----------------------------------------------------------------------

    def _init_unit(self, unit: Unit, scope: _Scope) -> list[str]:
        """Constructor lines (fully indented) that create one unit's module."""
        target = f"self.{unit.attr} = "
        if unit.kind == "merge":
            return []
        if unit.kind in ("layer", "call"):
            func, args = self._ctor(unit, scope, B)
            return fmt.statement(target, func, args, B)
        if unit.kind == "module":
            func, args = self._body_ctor(unit.body, scope, B)
            return fmt.statement(target, func, args, B)
        if unit.kind == "cond":
            return self._init_cond(unit, scope, target)
        return self._init_repeat(unit, scope, target)

    def _init_cond(self, unit: Unit, scope: _Scope, target: str) -> list[str]:
        cond = scope.expr(unit.cond)
        pad = fmt.INDENT * B
        lines: list[str] = []
        if len(unit.branches) == 2:
            for taken, keyword in ((True, f"if {cond}:"), (False, "else:")):
                func, args = self._body_ctor(unit.branches[taken], scope, B + 1)
                lines.append(pad + keyword)
                lines += fmt.statement(target, func, args, B + 1)
            return lines
        (taken, body), = unit.branches.items()
        test = f"not ({cond})" if taken else cond
        message = fmt.py_str(f"this model was generated for ({cond}) == {taken}; "
                             "recompile the .net file with netdsl for other values")
        lines += [f"{pad}if {test}:"] + fmt.statement("raise ", "ValueError", [message], B + 1)
        func, args = self._body_ctor(body, scope, B)
        return lines + fmt.statement(target, func, args, B)

    def _init_repeat(self, unit: Unit, scope: _Scope, target: str) -> list[str]:
        pad = fmt.INDENT * B
        count = scope.expr(unit.count)
        if unit.body is None:
            return [f"{pad}{target}nn.Sequential()  # {fmt.comment_text(count)} times: none here"]
        loop = unit.loop_var
        loop_name = scope.cls.renames.get(loop, "channels")
        uses_loop = loop in _body_symbols(unit.body)
        body = unit.body
        unchanged = unit.update is None or _render(unit.update) in (_render(unit.init),
                                                                   _render(Sym(loop)))
        if uses_loop and unchanged:
            # every iteration sees the same channels: build identical modules
            body = _subst_body(body, {loop: unit.init})
            uses_loop = False
        if not uses_loop and body.kind != "chain":
            func, args = self._body_ctor(body, scope, B + 1)
            item = fmt.nested_call(func, args, B + 1)
            return fmt.statement(target, "nn.Sequential",
                                 [f"*[{item} for _ in range({count})]"], B)
        lines = [f"{pad}layers = []" if scope.declared_layers else
                 f"{pad}layers: list[nn.Module] = []"]
        scope.declared_layers = True
        if uses_loop:
            lines.append(f"{pad}{loop_name} = {scope.expr(unit.init)}")
        lines.append(f"{pad}for _ in range({count}):")
        if body.kind == "chain":
            items = [self._ctor_text(u, scope, B + 2) for u in body.units]
            lines += _list_extend(items, B + 1)
        else:
            func, args = self._body_ctor(body, scope, B + 1)
            lines += fmt.statement("layers.append(", func, args, B + 1, suffix=")")
        if uses_loop and unit.update is not None and _render(unit.update) != _render(Sym(loop)):
            lines.append(f"{pad}    {loop_name} = {scope.expr(unit.update)}")
        lines.append(f"{pad}{target}nn.Sequential(*layers)")
        return lines

    def _ctor_text(self, unit: Unit, scope: _Scope, indent: int) -> str:
        func, args = self._ctor(unit, scope, indent)
        return fmt.nested_call(func, args, indent)

    def _body_ctor(self, body: Body, scope: _Scope, indent: int) -> tuple[str, list[str]]:
        if body.kind == "identity":
            return "nn.Identity", []
        if body.kind == "single":
            return self._ctor(body.units[0], scope, indent)
        if body.kind == "chain":
            return "nn.Sequential", [self._ctor_text(u, scope, indent + 1) for u in body.units]
        args = []
        for keyword, value in body.args:
            text = scope.expr(value)
            args.append(text if keyword is None else f"{keyword}={text}")
        return body.cls.name, args

    def _ctor(self, unit: Unit, scope: _Scope, indent: int) -> tuple[str, list[str]]:
        if unit.kind == "call":
            args = []
            for keyword, value in unit.args:
                text = scope.expr(value)
                args.append(text if keyword is None else f"{keyword}={text}")
            return unit.cls.name, args
        if unit.kind == "module":
            return self._body_ctor(unit.body, scope, indent)
        return self._layer(unit, scope)

    def _layer(self, unit: Unit, scope: _Scope) -> tuple[str, list[str]]:
        node = unit.node
        inplace = ["inplace=True"] if unit.overwrites else []
        a = node.attrs
        e = scope.expr

        def kw(name: str, value, default) -> list[str]:
            if _is_default(value, default):
                return []
            return [f"{name}={e(value)}"]

        op = node.op
        if op == "conv":
            args = [e(a["in_channels"]), e(a["c"]), f"kernel_size={e(a['k'])}"]
            args += kw("stride", a["s"], 1) + kw("padding", a["p"], 0) + kw("dilation", a["d"], 1)
            args += kw("groups", a["g"], 1) + kw("bias", a["bias"], True)
            return "nn.Conv2d", args
        if op == "dwconv":
            cin = e(a["in_channels"])
            out = cin if _is_default(a["m"], 1) else e(a["in_channels"] * a["m"])
            args = [cin, out, f"kernel_size={e(a['k'])}"]
            args += kw("stride", a["s"], 1) + kw("padding", a["p"], 0) + kw("dilation", a["d"], 1)
            args += [f"groups={cin}"] + kw("bias", a["bias"], True)
            return "nn.Conv2d", args
        if op == "sepconv":
            self.helpers.add("SeparableConv2d")
            args = [e(a["in_channels"]), e(a["c"]), f"kernel_size={e(a['k'])}"]
            args += kw("stride", a["s"], 1) + kw("padding", a["p"], 0) + kw("dilation", a["d"], 1)
            args += kw("depth_multiplier", a["m"], 1) + kw("bias", a["bias"], True)
            return "SeparableConv2d", args
        if op in ("maxpool", "avgpool"):
            cls = "nn.MaxPool2d" if op == "maxpool" else "nn.AvgPool2d"
            args = [e(a["k"])]
            if _render(a["s"]) != _render(a["k"]):
                args.append(f"stride={e(a['s'])}")
            args += kw("padding", a["p"], 0)
            if op == "maxpool":
                args += kw("dilation", a["d"], 1)
            args += kw("ceil_mode", a["ceil"], False)
            if op == "avgpool":
                args += kw("count_include_pad", a["count_pad"], True)
            return cls, args
        if op == "gap":
            return "nn.AdaptiveAvgPool2d", ["1"]
        if op == "gmp":
            return "nn.AdaptiveMaxPool2d", ["1"]
        if op == "adaptive_avgpool":
            return "nn.AdaptiveAvgPool2d", [e(a["size"])]
        if op == "adaptive_maxpool":
            return "nn.AdaptiveMaxPool2d", [e(a["size"])]
        if op == "fc":
            return "nn.Linear", [e(a["in_features"]), e(a["n"])] + kw("bias", a["bias"], True)
        if op == "flatten":
            return "nn.Flatten", []
        if op == "bn":
            cls = "nn.BatchNorm2d" if len(node.shape) == 3 else "nn.BatchNorm1d"
            args = [e(a["num_features"])] + kw("eps", a["eps"], 1e-5)
            args += kw("momentum", a["momentum"], 0.1)
            return cls, args
        if op == "lrn":
            return "nn.LocalResponseNorm", [e(a["n"]), f"alpha={e(a['alpha'])}",
                                           f"beta={e(a['beta'])}", f"k={e(a['k'])}"]
        if op == "dropout":
            return "nn.Dropout", kw("p", a["p"], 0.5)
        if op == "drop_path":
            self.helpers.add("DropPath")
            return "DropPath", [e(a["p"])]
        if op == "zeropad":
            left, right, top, bottom = zeropad_sides(a["p"])
            if isinstance(a["p"], Num):
                return "nn.ZeroPad2d", [e(a["p"])]
            return "nn.ZeroPad2d", [f"({e(left)}, {e(right)}, {e(top)}, {e(bottom)})"]
        if op == "shuffle":
            return "nn.ChannelShuffle", [e(a["g"])]
        if op == "scale":
            self.helpers.add("Scale")
            return "Scale", [e(a["s"])]
        if op == "softmax":
            return "nn.Softmax", ["dim=1"]
        simple = {
            "relu": "nn.ReLU", "relu6": "nn.ReLU6", "sigmoid": "nn.Sigmoid", "tanh": "nn.Tanh",
            "gelu": "nn.GELU", "silu": "nn.SiLU", "hardswish": "nn.Hardswish",
            "hardsigmoid": "nn.Hardsigmoid",
        }
        if op in simple:
            return simple[op], (inplace if op in _INPLACE else [])
        if op == "leaky_relu":
            return "nn.LeakyReLU", kw("negative_slope", a["slope"], 0.01) + inplace
        if op == "elu":
            return "nn.ELU", kw("alpha", a["alpha"], 1.0) + inplace
        raise NetdslError(f"the torch backend cannot express '{op}'", node.span)

    # -- forward -------------------------------------------------------------------

    def _forward(self, cls: ClassModel, scope: _Scope, program: Program) -> list[str]:
        lines: list[str] = []
        eval_units = [u for u in cls.units if not u.train_only]
        train_units = [u for u in cls.units if u.train_only]
        for unit in eval_units:
            lines += self._forward_unit(unit, cls)
        eval_outs = [var for _, var, train in cls.outputs if not train]
        train_outs = [var for _, var, train in cls.outputs if train]
        if train_units or train_outs:
            lines.append("if self.training:")
            for unit in train_units:
                lines += ["    " + line for line in self._forward_unit(unit, cls)]
            lines.append(f"    return {', '.join(eval_outs + train_outs)}")
        lines.append(f"return {', '.join(eval_outs)}")
        return lines

    def _forward_unit(self, unit: Unit, cls: ClassModel) -> list[str]:
        comment = shape_comment(unit, cls.in_shapes, cls.renames)
        out = unit.output
        ins = unit.inputs
        if unit.kind == "merge":
            op = unit.node.op
            if op == "concat":
                code = f"{out} = torch.cat([{', '.join(ins)}], 1)"
            elif op == "add":
                code = f"{out} = {' + '.join(ins)}"
            elif op == "mul":
                code = f"{out} = {' * '.join(ins)}"
            else:
                code = f"{out} = ({' + '.join(ins)}) / {len(ins)}"
        else:
            arg = ins[0]
            if unit.kind == "layer" and unit.node.op == "fc" and len(unit.node.in_shapes[0]) == 3:
                arg = f"torch.flatten({arg}, 1)"
            code = f"{out} = self.{unit.attr}({arg})"
        return _with_comment(code, comment)


# ---- helpers -----------------------------------------------------------------------


def _render(e) -> str | None:
    if e is None:
        return None
    return (expr_of(e) if not isinstance(e, Expr) else e).render()


def _is_default(value, default) -> bool:
    if isinstance(value, Num):
        return value.is_const and value.value == default and type(value.value) is type(default)
    if isinstance(value, Tup):
        return value.is_const and all(v == default for v in value.value)
    return value == default


def _type_hint(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, tuple):
        return "tuple[int, ...]"
    if isinstance(value, str):
        return "str"
    return "int"


def _indent(lines: list[str], levels: int) -> list[str]:
    pad = "    " * levels
    return [pad + line if line else "" for line in lines]


def _with_comment(code: str, comment: str) -> list[str]:
    if not comment:
        return [code]
    # 8 spaces of class/method indentation; black leaves comments where they are
    if len(code) + 8 + 4 + len(comment) <= fmt.LINE:
        return [f"{code}  # {comment}"]
    return [f"# {comment}", code]


def _list_extend(items: list[str], indent: int) -> list[str]:
    pad = fmt.INDENT * indent
    lines = [f"{pad}layers += ["]
    for item in items:
        first, *rest = item.split("\n")
        lines.append(f"{pad}    {first}" + ("," if not rest else ""))
        for i, r in enumerate(rest):
            lines.append(r + ("," if i == len(rest) - 1 else ""))
    lines.append(f"{pad}]")
    return lines


def _body_symbols(body: Body) -> set[str]:
    from .base import _body_exprs

    out: set[str] = set()
    for e in _body_exprs(body):
        out |= e.symbols
    return out


def _subst_body(body: Body, mapping: dict) -> Body:
    """The body with symbols replaced (used to fold a fixed-point loop variable)."""
    import copy

    clone = copy.copy(body)
    if body.kind == "class":
        clone.args = [(k, v.subst(mapping)) for k, v in body.args]
        return clone
    clone.units = [_subst_unit(u, mapping) for u in body.units]
    return clone


def _subst_unit(unit: Unit, mapping: dict) -> Unit:
    import copy

    clone = copy.copy(unit)
    if unit.kind == "call":
        clone.args = [(k, v.subst(mapping)) for k, v in unit.args]
    elif unit.kind in ("layer", "merge"):
        node = copy.copy(unit.node)
        node.attrs = {k: (Num(v.value, v.expr.subst(mapping)) if isinstance(v, Num) else v)
                      for k, v in unit.node.attrs.items()}
        clone.node = node
    return clone
