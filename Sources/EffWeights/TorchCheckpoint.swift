import CZlibShim
import Foundation
import ZIPFoundation

/// Readers for the two `torch.save` formats. Both run the checkpoint's pickle through
/// `PickleMachine` (nothing executed) and map its tensors onto their storages.
enum TorchCheckpoint {
    /// The pickled magic number 0x1950a86a20f9469cfc6c that starts a legacy file.
    static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    /// Storages met in persistent ids, by key.
    final class StorageTable {
        var storages: [String: StorageReference] = [:]
    }

    /// Runs one pickle starting at `position`; returns the object and where the pickle ended.
    static func unpickle(_ data: Data, at position: Int = 0, file: String, storages: StorageTable) throws -> (PickleValue, Int) {
        try data.withUnsafeBytes { raw in
            var machine = PickleMachine(data: raw, at: position, file: file) { id in
                try resolveStorage(id, file: file, into: storages)
            }
            let value = try machine.load()
            return (value, machine.end)
        }
    }

    /// ('storage', storage_type, key, location, numel[, view_metadata]) → a storage reference.
    static func resolveStorage(_ id: PickleValue, file: String, into table: StorageTable) throws -> PickleValue {
        guard let fields = id.asTuple, fields.count >= 5, fields[0].asString == "storage",
              case .global(let typeName) = fields[1], let count = fields[4].asInt, count >= 0 else {
            throw WeightsError(.corrupt, file, "unexpected persistent id in the pickle (not a torch storage)")
        }
        let key: String
        if let text = fields[2].asString { key = text } else if let number = fields[2].asInt { key = String(number) } else {
            throw WeightsError(.corrupt, file, "storage key is neither a string nor an integer")
        }
        if fields.count >= 6, case .tuple = fields[5] {
            throw WeightsError(.corrupt, file, "storage views (pre-0.4 torch files) are not supported; re-save the checkpoint with a recent torch")
        }
        guard let dtype = DType(torchStorage: String(typeName.split(separator: ".").last ?? "")) else {
            throw WeightsError(.unsupportedDType, file, "storage type '\(typeName)' is not supported (float32, float16, bfloat16, float64 and integer storages are)")
        }
        let reference = StorageReference(key: key, dtype: dtype, elementCount: count)
        table.storages[key] = reference
        return .storage(reference)
    }

    /// The state dict inside a checkpoint object, as (name, tensor reference) in order.
    static func stateDict(_ root: PickleValue, file: String) throws -> [(String, TensorReference)] {
        func tensors(in dict: PickleDict) -> [(String, TensorReference)] {
            dict.entries.compactMap { entry in
                guard case .string(let name) = entry.key, case .tensor(let t) = entry.value else { return nil }
                return (name, t)
            }
        }
        guard case .dict(let top) = root else {
            throw WeightsError(.corrupt, file, "the checkpoint holds no dictionary of tensors (found \(root.kindName))")
        }
        let direct = tensors(in: top)
        if !direct.isEmpty { return direct }
        // A training checkpoint: pick the weights as timm's load_state_dict does (EMA first).
        for key in ["state_dict_ema", "model_ema", "state_dict", "model"] {
            if let entry = top.entries.first(where: { $0.key.asString == key }), case .dict(let inner) = entry.value {
                let found = tensors(in: inner)
                if !found.isEmpty { return found }
            }
        }
        let keys = top.entries.compactMap { $0.key.asString }.prefix(10).joined(separator: ", ")
        throw WeightsError(.corrupt, file, "no tensors found in the checkpoint (top-level keys: \(keys.isEmpty ? "none" : keys))")
    }

    static func locations(_ state: [(String, TensorReference)], file: String,
                          storageBytes: (StorageReference) throws -> (Data, Int)) throws -> [(String, TensorLocation)] {
        var cache: [String: (Data, Int)] = [:]
        return try state.map { name, t in
            let (buffer, byteOffset): (Data, Int)
            if let hit = cache[t.storage.key] { (buffer, byteOffset) = hit } else {
                (buffer, byteOffset) = try storageBytes(t.storage)
                cache[t.storage.key] = (buffer, byteOffset)
            }
            let location = TensorLocation(buffer: buffer, byteOffset: byteOffset, storageElements: t.storage.elementCount,
                                          dtype: t.storage.dtype, offset: t.offset, shape: t.shape, strides: t.strides)
            try location.validate(name: name, file: file)
            return (name, location)
        }
    }

    /// The largest `data.pkl` read: torch's own are kilobytes to a few megabytes (even with an
    /// optimizer state, whose tensors are storages, not pickle bytes).
    static let maxPickleBytes = 256 << 20

    /// Reads a zip checkpoint: `<name>/data.pkl` and `<name>/data/<key>` per storage.
    /// The central directory is walked once into a table (a lookup per storage was a scan per
    /// storage: quadratic in the tensor count). Every entry is checked against what it must hold
    /// before anything is allocated for it — the pickle against `maxPickleBytes`, a storage
    /// against its element count × dtype size — read incrementally with that bound enforced as
    /// the bytes come (an entry's header may lie), into memory whose allocation failure is an
    /// error. The archive is read from the file, not from memory: ZIPFoundation's in-memory
    /// archive traps on a central directory that points past the end of the data (found by Fuzz/,
    /// see Tests/EffWeightsTests/Fixtures/fuzz/), its file-backed one reports an error.
    static func readZip(path: String) throws -> [(String, TensorLocation)] {
        let archive: Archive
        do {
            archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw WeightsError(.corrupt, path, "a zip file that cannot be opened (\(error)); the file may be truncated")
        }
        var entries: [String: Entry] = [:]
        var pickleEntry: Entry?
        for entry in archive where entry.type == .file {
            if entries[entry.path] == nil { entries[entry.path] = entry }
            if pickleEntry == nil, entry.path.hasSuffix("data.pkl") { pickleEntry = entry }
        }
        guard let pickleEntry else {
            throw WeightsError(.corrupt, path, "a zip file without data.pkl: not a torch.save checkpoint")
        }
        let root = String(pickleEntry.path.dropLast("data.pkl".count))
        let table = StorageTable()
        guard pickleEntry.uncompressedSize <= UInt64(maxPickleBytes) else {
            throw WeightsError(.corrupt, path, "zip entry '\(pickleEntry.path)' claims \(pickleEntry.uncompressedSize) bytes, over the \(maxPickleBytes >> 20) MB limit for a checkpoint's pickle")
        }
        let pickle = try extract(pickleEntry, bytes: Int(pickleEntry.uncompressedSize), from: archive, path: path)
        let (object, _) = try unpickle(pickle, file: path, storages: table)
        let state = try stateDict(object, file: path)
        return try locations(state, file: path) { storage in
            guard let entry = entries[root + "data/" + storage.key] else {
                throw WeightsError(.corrupt, path, "storage '\(storage.key)' is missing from the zip")
            }
            guard let needed = storage.dtype.byteCount(of: storage.elementCount), entry.uncompressedSize == UInt64(needed) else {
                throw WeightsError(.corrupt, path, "storage '\(storage.key)' (zip entry '\(entry.path)') holds \(entry.uncompressedSize) bytes, its \(storage.elementCount) \(storage.dtype.rawValue) values need \(storage.dtype.byteCount(of: storage.elementCount).map(String.init) ?? "more than 2^63")")
            }
            return (try extract(entry, bytes: needed, from: archive, path: path), 0)
        }
    }

    /// The `bytes` bytes of `entry` (its header's size, already checked against a bound), read
    /// chunk by chunk into one allocation; more or fewer bytes than that, a CRC mismatch or an
    /// allocation the process cannot make is an error.
    private static func extract(_ entry: Entry, bytes: Int, from archive: Archive, path: String) throws -> Data {
        guard let buffer = malloc(max(bytes, 1)) else {
            throw WeightsError(.corrupt, path, "zip entry '\(entry.path)' needs \(bytes) bytes of memory, which this process cannot allocate")
        }
        var filled = 0, checksum: UInt = 0
        do {
            // zlib's crc32 instead of ZIPFoundation's (5x slower: 1.5 s of a 300 MB checkpoint).
            _ = try archive.extract(entry, bufferSize: 1 << 20, skipCRC32: true) { chunk in
                guard chunk.count <= bytes - filled else { throw EntryTooLong() }
                let destination = buffer.advanced(by: filled).assumingMemoryBound(to: UInt8.self)
                chunk.copyBytes(to: destination, count: chunk.count)
                checksum = crc32(checksum, destination, UInt32(chunk.count))
                filled += chunk.count
            }
        } catch is EntryTooLong {
            free(buffer)
            throw WeightsError(.corrupt, path, "zip entry '\(entry.path)' holds more than the \(bytes) bytes its header says")
        } catch {
            free(buffer)
            throw WeightsError(.corrupt, path, "zip entry '\(entry.path)' cannot be read (\(error)): its sizes or checksum do not match its data")
        }
        guard filled == bytes else {
            free(buffer)
            throw WeightsError(.corrupt, path, "zip entry '\(entry.path)' holds \(filled) bytes, its header says \(bytes)")
        }
        guard UInt32(truncatingIfNeeded: checksum) == entry.checksum else {
            free(buffer)
            throw WeightsError(.corrupt, path, "zip entry '\(entry.path)' fails its CRC-32 check: the file is damaged")
        }
        return Data(bytesNoCopy: buffer, count: bytes, deallocator: .free)
    }

    private struct EntryTooLong: Error {}

    /// Reads a legacy checkpoint: magic, protocol version, system info, the object, the storage
    /// keys, then each storage as an 8-byte element count followed by its raw elements.
    static func readLegacy(path: String, data: Data) throws -> [(String, TensorLocation)] {
        let table = StorageTable()
        var position = 0
        var header: [PickleValue] = []
        for _ in 0..<3 {
            let (value, end) = try unpickle(data, at: position, file: path, storages: table)
            header.append(value)
            position = end
        }
        guard case .int(1001) = header[1] else {
            throw WeightsError(.corrupt, path, "unsupported legacy torch protocol version")
        }
        let (object, afterObject) = try unpickle(data, at: position, file: path, storages: table)
        let (keyList, afterKeys) = try unpickle(data, at: afterObject, file: path, storages: table)
        guard let keys = keyList.asTuple?.compactMap(\.asString) else {
            throw WeightsError(.corrupt, path, "the legacy storage key list is missing")
        }
        var offsets: [String: Int] = [:]
        position = afterKeys
        for key in keys {
            guard let storage = table.storages[key] else {
                throw WeightsError(.corrupt, path, "storage '\(key)' is listed but never used")
            }
            guard position + 8 <= data.count else {
                throw WeightsError(.corrupt, path, "the file ends before storage '\(key)' (truncated)")
            }
            let count = data.withUnsafeBytes { Int(Int64(littleEndian: $0.loadUnaligned(fromByteOffset: position, as: Int64.self))) }
            guard count == storage.elementCount else {
                throw WeightsError(.corrupt, path, "storage '\(key)' says \(count) elements, the pickle says \(storage.elementCount)")
            }
            offsets[key] = position + 8
            guard let bytes = storage.dtype.byteCount(of: count), bytes <= data.count - position - 8 else {
                throw WeightsError(.corrupt, path, "the file ends inside storage '\(key)' (truncated)")
            }
            position += 8 + bytes
        }
        let state = try stateDict(object, file: path)
        return try locations(state, file: path) { storage in
            guard let offset = offsets[storage.key] else {
                throw WeightsError(.corrupt, path, "storage '\(storage.key)' has no data in the file")
            }
            return (data, offset)
        }
    }
}

extension PickleValue {
    var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "a bool"
        case .int, .bigInt: return "an int"
        case .float: return "a float"
        case .string: return "a string"
        case .bytes: return "bytes"
        case .tuple: return "a tuple"
        case .list: return "a list"
        case .dict: return "a dict"
        case .set: return "a set"
        case .global(let name): return name
        case .storage: return "a storage"
        case .tensor: return "a tensor"
        case .object(let name, _): return name
        case .mark: return "a mark"
        }
    }
}
