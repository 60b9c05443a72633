"""Loading a reference model's weights into a generated PyTorch model by order and shape.

netdsl.weights.load_by_order is this module's function. A model compiled with
`--weights` copies the text below the copy mark into its file (like train.py copies
the other runtime modules, see __init__.py), so that its `build_model(pretrained=True)`
pairs published weights with the model without netdsl installed; its names join the
model file's namespace, where the emitters keep them free (emit/base.py MODULE_LEVEL).
"""

from dataclasses import dataclass
from difflib import SequenceMatcher

# ==== train.py: the rest of this module is copied into it verbatim ====


def load_by_order(model, state_dict) -> dict[str, str]:
    """Load a reference model's weights into a generated PyTorch model by order and shape.

    A generated model registers its parameters and buffers in the order the .net file
    writes its layers, so a file written to mirror a reference network (torchvision's
    resnet50, say) holds the same tensors in the same order under other names. This
    pairs the two `state_dict`s entry by entry (parameters and buffers, e.g. BatchNorm's
    running statistics, in registration order), checks every pair's shape, and loads.

    Where the flat order does not pair up, because one side registers a whole module
    at another point (torchvision's googlenet registers its aux heads after inception5b,
    the .net file writes each after the block it reads), entries are paired by
    structure instead. Each `state_dict` is grouped into its modules (entries that
    share a path prefix), and at each level of the two module trees, starting at the
    top:

    1. the children (submodules, and a module's own entries) whose entries have the
       same sequence of shapes pair in order, as a diff pairs equal lines (difflib's
       matching blocks);
    2. a submodule the reference has left over pairs with the first left-over
       submodule of the model that has its sequence of shapes: a module registered
       elsewhere pairs as a whole;
    3. what is left over on both sides pairs entry by entry in order if the shapes
       agree (one side's `conv1`, `bn1` against the other's `stem` that holds both,
       or a container of heads against heads registered one by one); otherwise, in
       each stretch between the pairs of step 1, the largest modules on either side
       are opened (replaced by their children, so that modules of like size meet: a
       stage against a stage, then blocks, then layers) and the steps repeat.

    Only shapes and registration order decide; names are never compared. Modules or
    entries with equal sequences of shapes pair in the order they are registered, so
    the result follows from the two orders alone and is the same on every run. Every
    entry of each side pairs with exactly one of the other's, of the same shape, or
    nothing is loaded.

    `state_dict` is a mapping of names to tensors, or a module whose `state_dict()` is
    used. Returns {model name: reference name}, in the model's order. Raises
    ValueError, with nothing loaded, when neither pairing works: the message names
    the first entry at which the flat order fails (its index, both names and both
    shapes), then the first reference entry or module that pairs with nothing by
    structure and the model's left-over candidates there (or the model's module that
    the reference lacks).
    """
    if hasattr(state_dict, "state_dict"):
        state_dict = state_dict.state_dict()
    target = model.state_dict()
    ours, theirs = list(target.items()), list(state_dict.items())
    problem = _flat_mismatch(ours, theirs)
    if problem is None:
        pairs = list(zip(range(len(ours)), range(len(theirs))))
    else:
        try:
            pairs = _pair_units(_units(ours), _units(theirs))
        except _NoPairing as e:
            raise ValueError(f"{problem}; nor do they pair by module: {e}") from None
        assert sorted(i for i, _ in pairs) == list(range(len(ours))), (
            "unpaired model entries"
        )
        assert sorted(j for _, j in pairs) == list(range(len(theirs))), (
            "unpaired reference"
        )
    model.load_state_dict({ours[i][0]: theirs[j][1] for i, j in pairs})
    return {ours[i][0]: theirs[j][0] for i, j in sorted(pairs)}


def _flat_mismatch(ours: list, theirs: list) -> str | None:
    """Why the two flat lists of (name, tensor) do not pair by order, or None."""
    for index in range(max(len(ours), len(theirs))):
        if index >= len(ours) or index >= len(theirs):
            extra, owner, other = (
                (theirs, "the reference", "the model")
                if index >= len(ours)
                else (ours, "the model", "the reference")
            )
            name, tensor = extra[index]
            return (
                f"entry {index}: {owner} has '{name}' {_shape(tensor)} but {other} has only "
                f"{index} entries ({len(ours)} in the model, {len(theirs)} in the reference)"
            )
        (name, tensor), (ref_name, ref_tensor) = ours[index], theirs[index]
        if tuple(tensor.shape) != tuple(ref_tensor.shape):
            return (
                f"entry {index}: the model's '{name}' is {_shape(tensor)} but the reference's "
                f"'{ref_name}' is {_shape(ref_tensor)}"
            )
    return None


def _shape(tensor) -> str:
    shape = tuple(tensor.shape)
    return "x".join(str(d) for d in shape) if shape else "a scalar"


# -- pairing by structure: module trees of two state_dicts ----------------------------------


@dataclass
class _Unit:
    """A module of a state_dict (its entries share the prefix `name`), or one entry."""

    name: str
    entries: list  # [(index in the flat state_dict, shape)], in registration order
    children: list | None = None  # sub-units in registration order; None for an entry

    @property
    def shapes(self) -> tuple:
        return tuple(shape for _, shape in self.entries)


class _NoPairing(Exception):
    """The left-over units of one level of the two trees do not pair."""

    def __init__(self, message: str, lonely: bool = False) -> None:
        super().__init__(message)
        self.lonely = lonely  # one side had nothing left to pair with


def _units(items: list) -> list[_Unit]:
    """The top level of the module tree of a flat [(name, tensor)] list."""
    root = _Unit("", [], [])
    groups = {"": root}
    for index, (name, tensor) in enumerate(items):
        entry = (index, tuple(tensor.shape))
        parts = name.split(".")
        parent = root
        parent.entries.append(entry)
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            group = groups.get(prefix)
            if group is None:
                group = groups[prefix] = _Unit(prefix, [], [])
                parent.children.append(group)
            group.entries.append(entry)
            parent = group
        parent.children.append(_Unit(name, [entry]))
    return root.children


def _pair_units(ours: list[_Unit], theirs: list[_Unit]) -> list[tuple[int, int]]:
    """[(model index, reference index)] for every entry of the two lists of units."""
    if _flat_shapes(ours) == _flat_shapes(theirs):
        return _by_order(ours, theirs)
    keys: dict[tuple, int] = {}

    def key(unit: _Unit) -> int:
        return keys.setdefault(unit.shapes, len(keys))

    matcher = SequenceMatcher(
        None, [key(u) for u in ours], [key(u) for u in theirs], False
    )
    matched: list[tuple[int, int]] = []  # (unit of ours, unit of theirs), by position
    gaps = []  # (positions in ours, positions in theirs) between the blocks that pair in order
    for tag, a1, a2, b1, b2 in matcher.get_opcodes():
        if tag == "equal":
            matched += zip(range(a1, a2), range(b1, b2))
        else:
            gaps.append((list(range(a1, a2)), list(range(b1, b2))))
    # a module registered elsewhere: the first left-over module with its shapes
    left_ours = [i for gap, _ in gaps for i in gap if ours[i].children is not None]
    for _, gap in gaps:
        for j in gap:
            if theirs[j].children is None:
                continue
            i = next((i for i in left_ours if ours[i].shapes == theirs[j].shapes), None)
            if i is not None:
                left_ours.remove(i)
                matched.append((i, j))
    # units with equal shapes pair in the order both sides register them, whichever step
    # paired them (a diff's blocks and the moves above can cross)
    by_key: dict[int, tuple[list, list]] = {}
    for i, j in matched:
        mine, its = by_key.setdefault(key(ours[i]), ([], []))
        mine.append(i)
        its.append(j)
    pairs = []
    for mine, its in by_key.values():
        pairs += _by_order(
            [ours[i] for i in sorted(mine)], [theirs[j] for j in sorted(its)]
        )
    done_ours, done_theirs = {i for i, _ in matched}, {j for _, j in matched}
    gaps = [
        (
            [ours[i] for i in a if i not in done_ours],
            [theirs[j] for j in b if j not in done_theirs],
        )
        for a, b in gaps
    ]
    rest_ours, rest_theirs = (
        [u for a, _ in gaps for u in a],
        [u for _, b in gaps for u in b],
    )
    if _flat_shapes(rest_ours) == _flat_shapes(rest_theirs):
        return pairs + _by_order(rest_ours, rest_theirs)
    try:  # each gap on its own, its modules opened
        for a, b in gaps:
            if a or b:
                pairs += _pair_opened(a, b)
        return pairs
    except _NoPairing as local:
        try:  # everything left over at this level together
            return pairs + _pair_opened(rest_ours, rest_theirs)
        except _NoPairing as everything:
            # a gap with nothing on one side says less than all that is left over
            raise (everything if local.lonely else local) from None


def _pair_opened(ours: list[_Unit], theirs: list[_Unit]) -> list[tuple[int, int]]:
    """_pair_units one level down: the largest modules, on either side, replaced by their
    children (so that modules of like size meet: a stage against a stage, then blocks)."""
    if _flat_shapes(ours) == _flat_shapes(theirs):
        return _by_order(ours, theirs)
    size = max(len(u.entries) for u in ours + theirs)
    opened = [
        u for u in ours + theirs if u.children is not None and len(u.entries) == size
    ]
    if not opened or not ours or not theirs:  # nothing to open, or nothing to pair with
        raise _NoPairing(_unpaired(ours, theirs), lonely=not ours or not theirs)
    ids = {id(u) for u in opened}

    def inner(units: list) -> list:
        return [c for u in units for c in (u.children if id(u) in ids else [u])]

    return _pair_units(inner(ours), inner(theirs))


def _flat_shapes(units: list[_Unit]) -> list[tuple]:
    return [shape for u in units for _, shape in u.entries]


def _by_order(ours: list[_Unit], theirs: list[_Unit]) -> list[tuple[int, int]]:
    flat_ours = [i for u in ours for i, _ in u.entries]
    flat_theirs = [j for u in theirs for j, _ in u.entries]
    return list(zip(flat_ours, flat_theirs))


def _unpaired(ours: list[_Unit], theirs: list[_Unit]) -> str:
    """The first reference unit of a level that pairs with nothing, and the candidates."""

    def describe(unit: _Unit) -> str:
        shapes = ", ".join(
            "x".join(map(str, s)) if s else "a scalar" for s in unit.shapes[:3]
        )
        more = f", ... ({len(unit.entries)} entries)" if len(unit.entries) > 3 else ""
        return f"'{unit.name}' ({shapes}{more})"

    candidates = ", ".join(describe(u) for u in ours[:4]) or "none"
    if len(ours) > 4:
        candidates += f" and {len(ours) - 4} more"
    if not theirs:
        return f"the model's {describe(ours[0])} has no counterpart in the reference"
    return (
        f"the reference's {describe(theirs[0])} has no counterpart in the model; "
        f"the model's unpaired entries and modules there: {candidates}"
    )
