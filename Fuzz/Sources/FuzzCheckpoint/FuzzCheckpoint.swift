import EffWeights
import Foundation

/// Where each input is written: WeightStore reads files, and fuzzing the file path is fuzzing
/// what users run.
let inputFile = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-fuzz-checkpoint-\(getpid()).bin")

/// libFuzzer entry point: read arbitrary bytes as a checkpoint, then every tensor in it. Reading
/// must end in tensors or a `WeightsError`, never a crash or an out-of-bounds read.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    guard (try? data.write(to: inputFile)) != nil else { fatalError("cannot write \(inputFile.path)") }
    guard let store = try? WeightStore(contentsOf: inputFile.path) else { return 0 }
    for info in store.infos where info.elementCount <= 1 << 22 {
        if let tensor = try? store.tensor(info.name) {
            precondition(tensor.count == info.elementCount, "tensor size disagrees with its shape")
        }
        _ = try? store.integers(info.name)
    }
    _ = store.layout
    return 0
}
