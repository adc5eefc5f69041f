"""A .proto parser for the subset clickstream schemas use: text -> FileDescriptorProto.

A Confluent registry serves Protobuf schemas as .proto text; the protobuf runtime needs
descriptors, and protoc is not a runtime dependency. Supported: `syntax` proto2/proto3,
`package`, `import` (resolved through the registry's references or the well-known types),
messages (nested), enums, scalar / message / enum fields with `repeated`, `optional`
(proto3 presence too) and `required`, `map<K, V>`, `oneof`, and `reserved`, `extensions`
and `option` statements (skipped: they do not change the wire format). Refused with a
clear error: `extend`, groups and editions. `service` blocks are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2  # type: ignore[import-untyped]  # no stubs installed

from worker.decoding.avro import SchemaParseError

FDP = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    "double": FDP.TYPE_DOUBLE, "float": FDP.TYPE_FLOAT, "int64": FDP.TYPE_INT64, "uint64": FDP.TYPE_UINT64,
    "int32": FDP.TYPE_INT32, "fixed64": FDP.TYPE_FIXED64, "fixed32": FDP.TYPE_FIXED32, "bool": FDP.TYPE_BOOL,
    "string": FDP.TYPE_STRING, "bytes": FDP.TYPE_BYTES, "uint32": FDP.TYPE_UINT32,
    "sfixed32": FDP.TYPE_SFIXED32, "sfixed64": FDP.TYPE_SFIXED64, "sint32": FDP.TYPE_SINT32,
    "sint64": FDP.TYPE_SINT64,
}
_TOKEN = re.compile(
    r"""\s+|//[^\n]*|/\*.*?\*/|(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
    r"""|(?P<num>[+-]?(?:0[xX][0-9a-fA-F]+|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))"""
    r"""|(?P<ident>\.?[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)|(?P<sym>[{}\[\]<>;=,():.-])""",
    re.DOTALL,
)


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            line = text.count("\n", 0, pos) + 1
            raise SchemaParseError(f".proto line {line}: unexpected character {text[pos]!r}")
        pos = match.end()
        if match.lastgroup is not None:
            out.append(match.group())
    return out


@dataclass
class _Field:
    label: str | None
    type_name: str
    name: str
    number: int
    scope: str
    oneof: int | None = None
    map_key: str | None = None


@dataclass
class _Message:
    name: str
    full: str
    fields: list[_Field] = field(default_factory=list)
    oneofs: list[str] = field(default_factory=list)
    nested: list[_Message] = field(default_factory=list)
    enums: list[descriptor_pb2.EnumDescriptorProto] = field(default_factory=list)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.syntax = "proto2"
        self.package = ""
        self.imports: list[str] = []
        self.messages: list[_Message] = []
        self.enums: list[descriptor_pb2.EnumDescriptorProto] = []
        self.symbols: dict[str, str] = {}

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> str:
        tok = self.peek()
        if tok is None:
            raise SchemaParseError(".proto ends unexpectedly")
        self.i += 1
        return tok

    def expect(self, want: str) -> None:
        got = self.next()
        if got != want:
            raise SchemaParseError(f".proto: expected {want!r}, found {got!r}")

    def skip_statement(self) -> None:
        """Skip to the end of the current statement (`;`), across nested brackets."""
        depth = 0
        while True:
            tok = self.next()
            if tok in "{[(":
                depth += 1
            elif tok in "}])":
                depth -= 1
            elif tok == ";" and depth <= 0:
                return
            if depth < 0:
                raise SchemaParseError(".proto: unbalanced brackets in an option")

    def skip_block(self) -> None:
        while self.next() != "{":
            pass
        depth = 1
        while depth:
            tok = self.next()
            depth += {"{": 1, "}": -1}.get(tok, 0)

    def parse(self) -> None:
        while (tok := self.peek()) is not None:
            if tok == "syntax":
                self.next()
                self.expect("=")
                self.syntax = self.next().strip("\"'")
                self.expect(";")
                if self.syntax not in ("proto2", "proto3"):
                    raise SchemaParseError(f".proto syntax {self.syntax!r} is not supported (proto2, proto3)")
            elif tok == "edition":
                raise SchemaParseError(".proto editions are not supported (proto2 and proto3 are)")
            elif tok == "package":
                self.next()
                self.package = self.next()
                self.expect(";")
            elif tok == "import":
                self.next()
                if self.peek() in ("public", "weak"):
                    self.next()
                self.imports.append(self.next().strip("\"'"))
                self.expect(";")
            elif tok == "option":
                self.skip_statement()
            elif tok == "message":
                self.messages.append(self.message(self.package))
            elif tok == "enum":
                self.enums.append(self.enum(self.package))
            elif tok == "service":
                self.skip_block()
            elif tok == ";":
                self.next()
            else:
                raise SchemaParseError(f".proto: {tok!r} is not supported at the top level")

    def _full(self, scope: str, name: str) -> str:
        return f"{scope}.{name}" if scope else name

    def message(self, scope: str) -> _Message:
        self.expect("message")
        name = self.next()
        msg = _Message(name, self._full(scope, name))
        self.symbols[msg.full] = "message"
        self.expect("{")
        while (tok := self.next()) != "}":
            if tok == "message":
                self.i -= 1
                msg.nested.append(self.message(msg.full))
            elif tok == "enum":
                self.i -= 1
                msg.enums.append(self.enum(msg.full))
            elif tok in ("option", "reserved", "extensions"):
                self.i -= 1
                self.skip_statement()
            elif tok == ";":
                continue
            elif tok == "oneof":
                msg.oneofs.append(self.next())
                self.expect("{")
                while (inner := self.next()) != "}":
                    if inner == "option":
                        self.i -= 1
                        self.skip_statement()
                    elif inner != ";":
                        self.i -= 1
                        msg.fields.append(self.field(msg, None, oneof=len(msg.oneofs) - 1))
            elif tok == "extend":
                raise SchemaParseError(".proto: 'extend' (extensions) is not supported")
            elif tok == "map":
                self.expect("<")
                key = self.next()
                self.expect(",")
                value = self.next()
                self.expect(">")
                fld = self._field_tail(msg, None, value)
                fld.map_key = key
                msg.fields.append(fld)
            elif tok in ("repeated", "optional", "required"):
                msg.fields.append(self.field(msg, tok))
            else:
                self.i -= 1
                msg.fields.append(self.field(msg, None))
        return msg

    def field(self, msg: _Message, label: str | None, oneof: int | None = None) -> _Field:
        type_name = self.next()
        if type_name == "group":
            raise SchemaParseError(".proto: groups are not supported")
        fld = self._field_tail(msg, label, type_name)
        fld.oneof = oneof
        return fld

    def _field_tail(self, msg: _Message, label: str | None, type_name: str) -> _Field:
        name = self.next()
        self.expect("=")
        number = self.next()
        if not number.isdigit():
            raise SchemaParseError(f".proto: field {name} has number {number!r}")
        if self.peek() == "[":
            self.skip_statement()
        else:
            self.expect(";")
        return _Field(label, type_name, name, int(number), msg.full)

    def enum(self, scope: str) -> descriptor_pb2.EnumDescriptorProto:
        self.expect("enum")
        name = self.next()
        self.symbols[self._full(scope, name)] = "enum"
        proto = descriptor_pb2.EnumDescriptorProto(name=name)
        self.expect("{")
        while (tok := self.next()) != "}":
            if tok in ("option", "reserved"):
                self.i -= 1
                self.skip_statement()
            elif tok != ";":
                self.expect("=")
                number = int(self.next(), 0)
                proto.value.add(name=tok, number=number)
                if self.peek() == "[":
                    self.skip_statement()
                else:
                    self.expect(";")
        return proto


def _resolve(name: str, scope: str, symbols: dict[str, str]) -> tuple[str, str]:
    """(kind, fully qualified name) of a type reference, searched from `scope` outwards."""
    if name.startswith("."):
        kind = symbols.get(name[1:])
        if kind is None:
            raise SchemaParseError(f".proto: unknown type {name}")
        return kind, name
    parts = scope.split(".") if scope else []
    while True:
        candidate = ".".join([*parts, name])
        if candidate in symbols:
            return symbols[candidate], "." + candidate
        if not parts:
            raise SchemaParseError(f".proto: unknown type {name!r} (is its import among the schema's references?)")
        parts.pop()


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _build(msg: _Message, syntax: str, symbols: dict[str, str]) -> descriptor_pb2.DescriptorProto:
    proto = descriptor_pb2.DescriptorProto(name=msg.name)
    for oneof in msg.oneofs:
        proto.oneof_decl.add(name=oneof)
    synthetic: list[tuple[descriptor_pb2.FieldDescriptorProto, str]] = []
    for fld in msg.fields:
        out = proto.field.add(name=fld.name, number=fld.number)
        if fld.map_key is not None:
            entry = proto.nested_type.add(name=_camel(fld.name) + "Entry")
            entry.options.map_entry = True
            for number, (field_name, type_name) in enumerate((("key", fld.map_key), ("value", fld.type_name)), 1):
                member = entry.field.add(name=field_name, number=number, label=FDP.LABEL_OPTIONAL)
                _set_type(member, type_name, msg.full, symbols)
            out.label = FDP.LABEL_REPEATED
            out.type = FDP.TYPE_MESSAGE
            out.type_name = f".{msg.full}.{entry.name}"
            continue
        out.label = {"repeated": FDP.LABEL_REPEATED, "required": FDP.LABEL_REQUIRED}.get(
            fld.label or "", FDP.LABEL_OPTIONAL)
        _set_type(out, fld.type_name, msg.full, symbols)
        if fld.oneof is not None:
            out.oneof_index = fld.oneof
        elif fld.label == "optional" and syntax == "proto3":
            synthetic.append((out, "_" + fld.name))
    for out, oneof_name in synthetic:  # synthetic oneofs must follow the real ones
        out.proto3_optional = True
        out.oneof_index = len(proto.oneof_decl)
        proto.oneof_decl.add(name=oneof_name)
    proto.nested_type.extend(_build(child, syntax, symbols) for child in msg.nested)
    proto.enum_type.extend(msg.enums)
    return proto


def _set_type(out: descriptor_pb2.FieldDescriptorProto, type_name: str, scope: str, symbols: dict[str, str]) -> None:
    if type_name in SCALARS:
        out.type = SCALARS[type_name]
        return
    kind, full = _resolve(type_name, scope, symbols)
    out.type = FDP.TYPE_MESSAGE if kind == "message" else FDP.TYPE_ENUM
    out.type_name = full


def file_symbols(proto: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    """Every message and enum a file defines, fully qualified -> "message" | "enum"."""
    out: dict[str, str] = {}

    def walk(scope: str, messages: Iterable[descriptor_pb2.DescriptorProto],
             enums: Iterable[descriptor_pb2.EnumDescriptorProto]) -> None:
        for enum in enums:
            out[f"{scope}.{enum.name}" if scope else enum.name] = "enum"
        for message in messages:
            full = f"{scope}.{message.name}" if scope else message.name
            out[full] = "message"
            walk(full, message.nested_type, message.enum_type)

    walk(proto.package, proto.message_type, proto.enum_type)
    return out


def parse_proto(text: str, name: str, dependencies: Iterable[descriptor_pb2.FileDescriptorProto] = ()
                ) -> descriptor_pb2.FileDescriptorProto:
    """Parse .proto `text` into a FileDescriptorProto named `name`; `dependencies` are its imports."""
    parser = _Parser(text)
    parser.parse()
    symbols = dict(parser.symbols)
    for dependency in dependencies:
        symbols.update(file_symbols(dependency))
    proto = descriptor_pb2.FileDescriptorProto(name=name, package=parser.package, syntax=parser.syntax)
    proto.dependency.extend(parser.imports)
    proto.message_type.extend(_build(msg, parser.syntax, symbols) for msg in parser.messages)
    proto.enum_type.extend(parser.enums)
    return proto


def imports_of(text: str) -> list[str]:
    """The files a .proto text imports (to fetch them before parsing it)."""
    parser = _Parser(text)
    parser.parse()
    return parser.imports
