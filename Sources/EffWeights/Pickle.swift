/// The values a checkpoint's pickle can build: containers, scalars, and references to tensor
/// storages. Nothing in a pickle is ever executed: globals outside a fixed allowlist are refused,
/// and the allowed ones are interpreted here, the way torch's `weights_only=True` does.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer too large for Int (little-endian two's complement bytes).
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// A set or frozenset (its items in pickle order; ADDITEMS grows it in place).
    case set(PickleList)
    /// An allowlisted global used as a value (a storage type, a class).
    case global(String)
    /// A storage named by a persistent id: (key, dtype, element count).
    case storage(StorageReference)
    /// A tensor view of a storage.
    case tensor(TensorReference)
    /// An allowlisted object kept as data only (e.g. argparse.Namespace in timm's checkpoints).
    case object(String, PickleValue)
    /// Marks the stack for the next tuple / list / dict opcode.
    case mark

    var asString: String? { if case .string(let s) = self { return s }; return nil }
    var asInt: Int? { if case .int(let i) = self { return i }; return nil }
    var asTuple: [PickleValue]? {
        switch self {
        case .tuple(let items): return items
        case .list(let list): return list.items
        default: return nil
        }
    }
}

/// A mutable list (pickle's APPEND ops mutate the object the memo shares).
final class PickleList {
    var items: [PickleValue] = []
    /// Nesting depth of the list and what it holds (see `PickleMachine.maxDepth`).
    var depth = 1
    /// Whether the list was put inside another container (it may not change after that).
    var isNested = false
}

/// A mutable, ordered dictionary with string or other keys.
final class PickleDict {
    var entries: [(key: PickleValue, value: PickleValue)] = []
    var depth = 1
    var isNested = false
}

struct StorageReference {
    let key: String
    let dtype: DType
    let elementCount: Int
}

struct TensorReference {
    let storage: StorageReference
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

/// A pickle interpreter for the opcodes `torch.save` produces (protocols 2 to 5), building
/// `PickleValue`s and calling nothing.
struct PickleMachine {
    /// Globals that may appear; anything else stops loading with an error.
    static let allowedGlobals: Set<String> = [
        "collections.OrderedDict", "builtins.set", "builtins.frozenset", "builtins.dict", "builtins.list",
        "builtins.tuple", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state", "torch.Size", "_codecs.encode", "argparse.Namespace",
    ]

    /// Storage-type globals allowed as values (torch.FloatStorage ...).
    static func isStorageType(_ name: String) -> Bool {
        name.hasPrefix("torch.") && DType(torchStorage: String(name.dropFirst(6))) != nil
    }

    let data: UnsafeRawBufferPointer
    let file: String
    /// Caps on what a hostile file can make us allocate.
    static let maxMemo = 10_000_000
    static let maxStack = 10_000_000
    /// Containers nested deeper than this are refused: freeing a value nests as deep as the value,
    /// so a pickle of a million nested tuples would overflow the stack.
    static let maxDepth = 1000

    private var position: Int
    private var stack: [PickleValue] = []
    /// Nesting depth of each stack entry (0 for scalars); lists and dicts keep theirs themselves.
    private var depths: [Int] = []
    private var marks: [Int] = []
    private var memo: [Int: (value: PickleValue, depth: Int)] = [:]
    /// Resolves a persistent id (torch's storage tuple) to a storage reference.
    private let resolvePersistentID: (PickleValue) throws -> PickleValue

    init(data: UnsafeRawBufferPointer, at position: Int = 0, file: String,
         resolvePersistentID: @escaping (PickleValue) throws -> PickleValue) {
        self.data = data
        self.position = position
        self.file = file
        self.resolvePersistentID = resolvePersistentID
    }

    /// Where the next pickle (if any) starts once `load` returned.
    var end: Int { position }

    private func corrupt(_ problem: String) -> WeightsError {
        WeightsError(.corrupt, file, "corrupt pickle at byte \(position): \(problem)")
    }

    private mutating func bytes(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= data.count - position else {
            throw corrupt("needs \(count) more bytes, the data ends first (truncated file?)")
        }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: data[position..<(position + count)])
    }

    private mutating func byte() throws -> UInt8 { try bytes(1)[0] }

    private mutating func littleEndian(_ count: Int) throws -> UInt64 {
        let raw = try bytes(count)
        var value: UInt64 = 0
        for i in (0..<count).reversed() { value = value << 8 | UInt64(raw[i]) }
        return value
    }

    /// An unsigned little-endian length of `count` bytes (the checks in `bytes` bound it later).
    private mutating func length(_ count: Int) throws -> Int {
        let value = try littleEndian(count)
        guard let length = Int(exactly: value) else { throw corrupt("length \(value) is impossible") }
        return length
    }

    private mutating func line() throws -> String {
        guard let newline = data[position...].firstIndex(of: 0x0A) else { throw corrupt("unterminated text line") }
        let text = String(decoding: data[position..<newline], as: UTF8.self)
        position = newline + 1
        return text
    }

    private mutating func utf8(_ count: Int) throws -> String {
        String(decoding: try bytes(count), as: UTF8.self)
    }

    private mutating func pop() throws -> PickleValue {
        try popWithDepth().value
    }

    private mutating func popWithDepth() throws -> (value: PickleValue, depth: Int) {
        guard let top = stack.popLast(), let depth = depths.popLast() else { throw corrupt("stack underflow") }
        if case .mark = top { throw corrupt("unexpected mark") }
        return (top, Self.depth(of: top, recorded: depth))
    }

    /// The entries above the last mark, and the deepest of their depths.
    private mutating func popToMark() throws -> (items: [PickleValue], depth: Int) {
        guard let mark = marks.popLast(), mark <= stack.count else { throw corrupt("no mark to pop to") }
        let items = Array(stack[mark...])
        let depth = zip(items, depths[mark...]).map { Self.depth(of: $0, recorded: $1) }.max() ?? 0
        stack.removeSubrange(mark...)
        depths.removeSubrange(mark...)
        return (items, depth)
    }

    private static func depth(of value: PickleValue, recorded: Int) -> Int {
        switch value {
        case .list(let list), .set(let list): return list.depth
        case .dict(let dict): return dict.depth
        default: return recorded
        }
    }

    private mutating func push(_ value: PickleValue, depth: Int = 0) throws {
        guard stack.count < Self.maxStack else { throw corrupt("stack too deep") }
        stack.append(value)
        depths.append(depth)
    }

    /// Pushes a container holding `items` whose deepest is `itemDepth` deep; the lists and dicts
    /// among them become nested (unchangeable).
    private mutating func pushContainer(_ value: PickleValue, holding items: [PickleValue], itemDepth: Int) throws {
        let depth = try checkedDepth(itemDepth + 1)
        Self.markNested(items)
        switch value {
        case .list(let list), .set(let list): list.depth = depth
        case .dict(let dict): dict.depth = depth
        default: break
        }
        try push(value, depth: depth)
    }

    private func checkedDepth(_ depth: Int) throws -> Int {
        guard depth <= Self.maxDepth else { throw corrupt("containers nested more than \(Self.maxDepth) deep") }
        return depth
    }

    private static func markNested(_ items: [PickleValue]) {
        for item in items {
            switch item {
            case .list(let list), .set(let list): list.isNested = true
            case .dict(let dict): dict.isNested = true
            default: break
            }
        }
    }

    private mutating func memoize(_ index: Int) throws {
        guard let top = stack.last, let depth = depths.last else { throw corrupt("nothing to memoize") }
        guard memo.count < Self.maxMemo else { throw corrupt("memo too large") }
        memo[index] = (top, depth)
    }

    private mutating func pushMemo(_ index: Int) throws {
        guard let entry = memo[index] else { throw corrupt("memo key \(index) was never stored") }
        try push(entry.value, depth: entry.depth)
    }

    /// Adds `items` (deepest `itemDepth`) to a list or dict that is not inside another container.
    private func grow(_ list: PickleList?, _ dict: PickleDict?, itemDepth: Int) throws {
        guard !(list?.isNested ?? false), !(dict?.isNested ?? false) else {
            throw corrupt("changes a container that is already inside another one")
        }
        let depth = try checkedDepth(itemDepth + 1)
        if let list { list.depth = max(list.depth, depth) }
        if let dict { dict.depth = max(dict.depth, depth) }
    }

    private func checkedGlobal(_ module: String, _ name: String) throws -> PickleValue {
        let full = "\(module).\(name)"
        guard Self.allowedGlobals.contains(full) || Self.isStorageType(full) else {
            throw WeightsError(.disallowedGlobal, file, "the pickle names the global '\(full)', which is not allowed (effdense loads tensors and plain containers only, and never runs code from a checkpoint)")
        }
        return .global(full)
    }

    /// Runs until STOP and returns the pickled object.
    mutating func load() throws -> PickleValue {
        while true {
            let opcode = try byte()
            switch opcode {
            case 0x80: _ = try byte()                                     // PROTO
            case 0x95: _ = try littleEndian(8)                            // FRAME
            case 0x2E:                                                    // STOP
                return try pop()
            case 0x28: marks.append(stack.count)                         // MARK
            case 0x30: _ = try pop()                                      // POP
            case 0x31: _ = try popToMark()                                // POP_MARK
            case 0x32:                                                    // DUP
                guard let top = stack.last, let depth = depths.last else { throw corrupt("DUP on an empty stack") }
                try push(top, depth: depth)
            case 0x4E: try push(.none)                                    // NONE
            case 0x88: try push(.bool(true))                              // NEWTRUE
            case 0x89: try push(.bool(false))                             // NEWFALSE
            case 0x4A: try push(.int(Int(Int32(bitPattern: UInt32(try littleEndian(4))))))  // BININT
            case 0x4B: try push(.int(Int(try byte())))                    // BININT1
            case 0x4D: try push(.int(Int(try littleEndian(2))))           // BININT2
            case 0x8A, 0x8B:                                              // LONG1, LONG4
                let count = opcode == 0x8A ? Int(try byte()) : Int(try littleEndian(4))
                let raw = Array(try bytes(count))
                if count == 0 {
                    try push(.int(0))
                } else if count <= 8 {
                    var value: UInt64 = raw.last.map { $0 & 0x80 != 0 ? UInt64.max : 0 } ?? 0
                    for b in raw.reversed() { value = value << 8 | UInt64(b) }
                    try push(.int(Int(Int64(bitPattern: value))))
                } else {
                    try push(.bigInt(raw))
                }
            case 0x49:                                                    // INT (text)
                let text = try line()
                if text == "00" { try push(.bool(false)) } else if text == "01" { try push(.bool(true)) } else {
                    guard let value = Int(text) else { throw corrupt("bad INT '\(text)'") }
                    try push(.int(value))
                }
            case 0x4C:                                                    // LONG (text)
                let text = try line()
                guard let value = Int(text.hasSuffix("L") ? String(text.dropLast()) : text) else { throw corrupt("bad LONG '\(text)'") }
                try push(.int(value))
            case 0x47: try push(.float(Double(bitPattern: try littleEndian(8).byteSwapped)))  // BINFLOAT (big-endian)
            case 0x58: try push(.string(try utf8(Int(try littleEndian(4)))))  // BINUNICODE
            case 0x8C: try push(.string(try utf8(Int(try byte()))))           // SHORT_BINUNICODE
            case 0x8D: try push(.string(try utf8(try length(8))))  // BINUNICODE8
            case 0x54: try push(.string(try utf8(Int(try littleEndian(4)))))  // BINSTRING
            case 0x55: try push(.string(try utf8(Int(try byte()))))           // SHORT_BINSTRING
            case 0x42: try push(.bytes(Array(try bytes(Int(try littleEndian(4))))))  // BINBYTES
            case 0x43: try push(.bytes(Array(try bytes(Int(try byte())))))          // SHORT_BINBYTES
            case 0x8E: try push(.bytes(Array(try bytes(try length(8)))))  // BINBYTES8
            case 0x29: try push(.tuple([]), depth: 1)                     // EMPTY_TUPLE
            case 0x74:                                                    // TUPLE
                let (items, depth) = try popToMark()
                try pushContainer(.tuple(items), holding: items, itemDepth: depth)
            case 0x85, 0x86, 0x87:                                        // TUPLE1, TUPLE2, TUPLE3
                var items: [PickleValue] = [], depth = 0
                for _ in 0..<Int(opcode - 0x84) {
                    let (item, itemDepth) = try popWithDepth()
                    items.insert(item, at: 0)
                    depth = max(depth, itemDepth)
                }
                try pushContainer(.tuple(items), holding: items, itemDepth: depth)
            case 0x5D: try push(.list(PickleList()))                      // EMPTY_LIST
            case 0x6C:                                                    // LIST
                let (items, depth) = try popToMark()
                let list = PickleList()
                list.items = items
                try pushContainer(.list(list), holding: items, itemDepth: depth)
            case 0x61:                                                    // APPEND
                let (item, depth) = try popWithDepth()
                guard case .list(let list) = stack.last else { throw corrupt("APPEND to a non-list") }
                try grow(list, nil, itemDepth: depth)
                Self.markNested([item])
                list.items.append(item)
            case 0x65:                                                    // APPENDS
                let (items, depth) = try popToMark()
                guard case .list(let list) = stack.last else { throw corrupt("APPENDS to a non-list") }
                try grow(list, nil, itemDepth: depth)
                Self.markNested(items)
                list.items += items
            case 0x7D: try push(.dict(PickleDict()))                      // EMPTY_DICT
            case 0x64:                                                    // DICT
                let (items, depth) = try popToMark()
                let dict = PickleDict()
                try Self.addPairs(items, to: dict, corrupt: corrupt)
                try pushContainer(.dict(dict), holding: items, itemDepth: depth)
            case 0x73:                                                    // SETITEM
                let (value, valueDepth) = try popWithDepth(), (key, keyDepth) = try popWithDepth()
                try setItems([key, value], depth: max(keyDepth, valueDepth))
            case 0x75:                                                    // SETITEMS
                let (items, depth) = try popToMark()
                try setItems(items, depth: depth)
            case 0x8F: try push(.set(PickleList()))                       // EMPTY_SET
            case 0x90:                                                    // ADDITEMS
                // The set stays on the stack and grows in place: each ADDITEMS costs its own items
                // only (a copy per ADDITEMS made 300,000 one-item ADDITEMS quadratic).
                let (items, depth) = try popToMark()
                guard case .set(let set) = stack.last else { throw corrupt("ADDITEMS to a non-set") }
                try grow(set, nil, itemDepth: depth)
                Self.markNested(items)
                set.items += items
            case 0x91:                                                    // FROZENSET
                let (items, depth) = try popToMark()
                let set = PickleList()
                set.items = items
                try pushContainer(.set(set), holding: items, itemDepth: depth)
            case 0x71: try memoize(Int(try byte()))                       // BINPUT
            case 0x72: try memoize(Int(try littleEndian(4)))              // LONG_BINPUT
            case 0x70:                                                    // PUT (text)
                guard let index = Int(try line()) else { throw corrupt("bad PUT index") }
                try memoize(index)
            case 0x94: try memoize(memo.count)                            // MEMOIZE
            case 0x68: try pushMemo(Int(try byte()))                      // BINGET
            case 0x6A: try pushMemo(Int(try littleEndian(4)))             // LONG_BINGET
            case 0x67:                                                    // GET (text)
                guard let index = Int(try line()) else { throw corrupt("bad GET index") }
                try pushMemo(index)
            case 0x63:                                                    // GLOBAL
                let module = try line(), name = try line()
                try push(try checkedGlobal(module, name))
            case 0x93:                                                    // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let m = module.asString, let n = name.asString else { throw corrupt("STACK_GLOBAL needs two strings") }
                try push(try checkedGlobal(m, n))
            case 0x52, 0x81, 0x92:                                        // REDUCE, NEWOBJ, NEWOBJ_EX
                if opcode == 0x92 { _ = try pop() }
                let (arguments, depth) = try popWithDepth(), callable = try pop()
                // What the call builds holds (parts of) the arguments: it is no deeper than they are.
                let result = try reduce(callable, arguments.asTuple ?? [])
                switch result {
                case .list(let list), .set(let list): list.depth = max(1, depth)
                case .dict(let dict): dict.depth = max(1, depth)
                default: break
                }
                try push(result, depth: depth)
            case 0x62:                                                    // BUILD
                let (state, depth) = try popWithDepth()
                let (target, targetDepth) = try popWithDepth()
                switch target {
                case .object(let name, _): try pushContainer(.object(name, state), holding: [state], itemDepth: depth)
                default: try push(target, depth: targetDepth)  // state on dicts / tensors (e.g. _metadata) is not needed
                }
            case 0x51:                                                    // BINPERSID
                try push(try resolvePersistentID(try pop()))
            case 0x50:                                                    // PERSID (text)
                try push(try resolvePersistentID(.string(try line())))
            default:
                throw corrupt(String(format: "unsupported opcode 0x%02X", opcode))
            }
        }
    }

    private mutating func setItems(_ items: [PickleValue], depth: Int) throws {
        guard let target = stack.last else { throw corrupt("SETITEMS on an empty stack") }
        switch target {
        case .dict(let dict):
            try grow(nil, dict, itemDepth: depth)
            Self.markNested(items)
            try Self.addPairs(items, to: dict, corrupt: corrupt)
        case .object: break  // attributes of an opaque object are not needed
        default: throw corrupt("SETITEM on a non-dict")
        }
    }

    private static func addPairs(_ items: [PickleValue], to dict: PickleDict, corrupt: (String) -> WeightsError) throws {
        guard items.count % 2 == 0 else { throw corrupt("odd number of dict items") }
        for i in stride(from: 0, to: items.count, by: 2) { dict.entries.append((items[i], items[i + 1])) }
    }

    /// Interprets a call of an allowlisted global. Nothing is executed.
    private func reduce(_ callable: PickleValue, _ arguments: [PickleValue]) throws -> PickleValue {
        guard case .global(let name) = callable else { throw corrupt("call of a non-global") }
        switch name {
        case "collections.OrderedDict", "builtins.dict":
            let dict = PickleDict()
            if let pairs = arguments.first?.asTuple {
                for pair in pairs {
                    guard let kv = pair.asTuple, kv.count == 2 else { throw corrupt("OrderedDict items must be pairs") }
                    dict.entries.append((kv[0], kv[1]))
                }
            }
            return .dict(dict)
        case "builtins.list":
            let list = PickleList()
            list.items = arguments.first?.asTuple ?? []
            return .list(list)
        case "builtins.tuple", "torch.Size":
            return .tuple(arguments.first?.asTuple ?? [])
        case "builtins.set", "builtins.frozenset":
            let set = PickleList()
            set.items = arguments.first?.asTuple ?? []
            return .set(set)
        case "_codecs.encode":
            guard let text = arguments.first?.asString else { throw corrupt("_codecs.encode needs a string") }
            return .bytes(text.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) })
        case "argparse.Namespace":
            return .object(name, .none)
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let first = arguments.first, case .tensor = first else { throw corrupt("_rebuild_parameter needs a tensor") }
            return first
        case "torch._utils._rebuild_tensor_v2":
            func integers(_ value: PickleValue) -> [Int]? {
                guard let items = value.asTuple else { return nil }
                let numbers = items.compactMap(\.asInt)
                return numbers.count == items.count ? numbers : nil
            }
            guard arguments.count >= 4, case .storage(let storage) = arguments[0], let offset = arguments[1].asInt,
                  let shape = integers(arguments[2]), let strides = integers(arguments[3]),
                  shape.count == strides.count else {
                throw corrupt("_rebuild_tensor_v2 with unexpected arguments")
            }
            return .tensor(TensorReference(storage: storage, offset: offset, shape: shape, strides: strides))
        default:
            throw WeightsError(.disallowedGlobal, file, "the pickle calls '\(name)', which effdense does not interpret")
        }
    }
}
