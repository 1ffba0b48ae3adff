import Foundation
import FuzzSupport

/// libFuzzer entry point: read arbitrary bytes as a checkpoint (recognised by content), then
/// every tensor in it. Reading must end in tensors or a `WeightsError`, never a crash or an
/// out-of-bounds read.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    readEverything(checkpointFile(data, "checkpoint"))
    return 0
}
