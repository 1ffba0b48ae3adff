import EffWeights
import Foundation
import ZIPFoundation

/// The fuzzer's bytes read as a stream of choices: a structure-aware target turns them into a
/// well-formed-looking file (opcode sequences, shapes, claimed sizes), so the mutations explore
/// the readers' logic rather than dying at the first magic number.
public struct Choices {
    private let bytes: [UInt8]
    private var position = 0

    public init(_ start: UnsafePointer<UInt8>?, _ count: Int) {
        bytes = start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    }

    public var isEmpty: Bool { position >= bytes.count }

    /// The next byte (0 once the input is used up).
    public mutating func byte() -> UInt8 {
        defer { position += 1 }
        return position < bytes.count ? bytes[position] : 0
    }

    /// A number below `bound`.
    public mutating func below(_ bound: Int) -> Int { bound <= 1 ? 0 : Int(word()) % bound }

    /// One of `items`.
    public mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    public mutating func word() -> UInt32 {
        (0..<4).reduce(UInt32(0)) { value, _ in value << 8 | UInt32(byte()) }
    }

    /// A size as hostile files claim them: small, zero, at a power of two's edge, huge, negative.
    public mutating func size() -> Int {
        switch below(8) {
        case 0: return 0
        case 1, 2, 3: return below(64)
        case 4: return 1 << below(63)
        case 5: return (1 << below(63)) - 1
        case 6: return -below(4) - 1
        default: return Int(Int32(bitPattern: word()))
        }
    }

    public mutating func shape() -> [Int] { (0..<below(5)).map { _ in size() } }
}

/// Writes `data` where WeightStore reads it (fuzzing the file path is fuzzing what users run).
public func checkpointFile(_ data: Data, _ name: String) -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-fuzz-\(name)-\(getpid())")
    guard (try? data.write(to: url)) != nil else { fatalError("cannot write \(url.path)") }
    return url.path
}

/// Reads a checkpoint and every tensor in it: it must end in tensors or a `WeightsError`, never a
/// crash, an out-of-bounds read or a hang.
public func readEverything(_ path: String) {
    guard let store = try? WeightStore(contentsOf: path) else { return }
    for info in store.infos where info.elementCount <= 1 << 22 {
        if let tensor = try? store.tensor(info.name) {
            precondition(tensor.count == info.elementCount, "tensor size disagrees with its shape")
        }
        _ = try? store.integers(info.name)
    }
    _ = store.layout
}

/// A torch.save zip (stored entries) holding `pickle` as archive/data.pkl and the storages.
public func torchZip(pickle: Data, storages: [(String, Data)]) -> Data? {
    guard let archive = try? Archive(accessMode: .create) else { return nil }
    func add(_ path: String, _ data: Data) throws {
        try archive.addEntry(with: path, type: .file, uncompressedSize: Int64(data.count), compressionMethod: .none) { position, size in
            data.subdata(in: Int(position)..<Int(position) + size)
        }
    }
    do {
        try add("archive/data.pkl", pickle)
        try add("archive/version", Data("3\n".utf8))
        for (key, data) in storages { try add("archive/data/" + key, data) }
    } catch {
        return nil
    }
    return archive.data
}
