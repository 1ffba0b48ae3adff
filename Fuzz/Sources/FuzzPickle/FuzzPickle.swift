import Foundation
import FuzzSupport

/// Structure-aware pickle target: the input chooses a sequence of pickle opcodes with operands
/// (strings, integers at hostile edges, tensor rebuilds with shapes holding zeros and huge
/// dimensions, storages whose claimed element counts and data sizes disagree, runs of one
/// opcode repeated up to 300,000 times to expose superlinear handling), wrapped in a torch.save
/// zip with matching (or not) storage entries, then read by WeightStore like a user's file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPickle(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    var choices = Choices(start, count)
    var pickle: [UInt8] = [0x80, 0x02]
    var storages: [(String, Data)] = []

    func string(_ text: String) -> [UInt8] { [0x8C, UInt8(text.utf8.count)] + Array(text.utf8) }
    func integer(_ value: Int) -> [UInt8] {
        withUnsafeBytes(of: Int64(value).littleEndian) { [0x8A, 8] + Array($0) }
    }
    func tuple(_ items: [[UInt8]]) -> [UInt8] { [0x28] + items.flatMap { $0 } + [0x74] }
    func tensor(_ choices: inout Choices) -> [UInt8] {
        let key = String(choices.below(4))
        let dtype = choices.pick(["FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "ByteStorage", "DoubleStorage"])
        let elements = choices.size()
        let shape = choices.shape()
        let strides = choices.below(2) == 0 ? shape.map { _ in choices.size() } : shape.map { _ in 1 }
        let bytes = choices.pick([0, 1, 4, 16, 64, 256]) + choices.below(8)
        storages.append((key, Data(repeating: choices.byte(), count: bytes)))
        let storage = tuple([string("storage"), Array("ctorch\n\(dtype)\n".utf8), string(key), string("cpu"), integer(elements)]) + [0x51]
        return Array("ctorch._utils\n_rebuild_tensor_v2\n".utf8)
            + tuple([storage, integer(choices.size()), tuple(shape.map(integer)), tuple(strides.map(integer)), [0x89],
                     Array("ccollections\nOrderedDict\n)R".utf8)]) + [0x52]
    }

    // Mostly a state dict of tensors, which the reader goes deepest into; then free opcodes.
    pickle += Array("ccollections\nOrderedDict\n)R".utf8)
    for i in 0..<choices.below(4) { pickle += string("t\(i)") + tensor(&choices) + [0x73] }
    let opcodes: [[UInt8]] = [
        [0x28], [0x4E], [0x88], [0x29], [0x5D], [0x7D], [0x8F], [0x90], [0x91], [0x65], [0x61], [0x75], [0x73], [0x74],
        [0x85], [0x86], [0x87], [0x6C], [0x64], [0x30], [0x31], [0x32], [0x94], [0x68, 0], [0x71, 1], [0x62], [0x52],
    ]
    while !choices.isEmpty {
        var piece: [UInt8]
        switch choices.below(6) {
        case 0: piece = string(String(repeating: "k", count: choices.below(8)))
        case 1: piece = integer(choices.size())
        case 2: piece = tensor(&choices)
        default: piece = choices.pick(opcodes)
        }
        // Now and then a long run of one piece: linear opcodes stay fast, quadratic ones time out.
        let repeats = choices.below(16) == 0 ? 1 + choices.below(300_000) : 1
        for _ in 0..<repeats { pickle += piece }
    }
    pickle.append(0x2E)
    if let zip = torchZip(pickle: Data(pickle), storages: storages) { readEverything(checkpointFile(zip, "pickle")) }
    return 0
}
