import Foundation
import FuzzSupport

/// Structure-aware safetensors target: the input chooses a header of tensors (dtypes known and
/// unknown, shapes with zeros, huge and negative dimensions, fractional and string numbers,
/// data offsets that fit, overlap or run past the data), the header length field (true or a lie)
/// and the data section's size; WeightStore then reads it like a user's file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    var choices = Choices(start, count)
    var entries: [String] = []
    var offset = 0
    func number(_ value: Int, _ choices: inout Choices) -> String {
        switch choices.below(12) {
        case 0: return "\(value).5"
        case 1: return "\"\(value)\""
        case 2: return "1e30"
        case 3: return "-0"
        default: return String(value)
        }
    }
    for i in 0..<choices.below(6) {
        let dtype = choices.pick(["F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "X"])
        let shape = choices.shape()
        let bytes = choices.below(4) == 0 ? choices.size() : shape.reduce(4, { $0 &* max($1, 0) }) % 4096
        let begin = choices.below(4) == 0 ? choices.size() : offset
        let end = choices.below(8) == 0 ? choices.size() : begin &+ bytes
        offset = max(offset, end)
        let shapeText = shape.map { number($0, &choices) }.joined(separator: ",")
        entries.append("\"t\(i)\":{\"dtype\":\"\(dtype)\",\"shape\":[\(shapeText)],\"data_offsets\":[\(number(begin, &choices)),\(number(end, &choices))]}")
    }
    if choices.below(4) == 0 { entries.append("\"__metadata__\":{\"format\":\"pt\"}") }
    let header = Data(("{" + entries.joined(separator: ",") + "}").utf8)
    let claimed = choices.below(8) == 0 ? UInt64(truncatingIfNeeded: choices.size()) : UInt64(header.count)
    let dataBytes = choices.below(4) == 0 ? choices.below(4096) : min(max(offset, 0), 1 << 20)
    var file = Data()
    withUnsafeBytes(of: claimed.littleEndian) { file.append(contentsOf: $0) }
    file.append(header)
    file.append(Data(repeating: choices.byte(), count: dataBytes))
    readEverything(checkpointFile(file, "safetensors"))
    return 0
}
