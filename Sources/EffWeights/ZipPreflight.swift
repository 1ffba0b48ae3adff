import Foundation

/// Checks a zip's directory records before ZIPFoundation reads them: ZIPFoundation 0.9.20 traps
/// (instead of throwing) on 64-bit offsets and sizes beyond Int64's range, which a hostile or
/// damaged file can hold (found by Fuzz/; see Tests/EffWeightsTests/Fixtures/fuzz/). This walks
/// the same records ZIPFoundation will — the end-of-directory record it finds (the last signature
/// in the file), the ZIP64 record before it, every central directory entry and the local header
/// it points to — and refuses any ZIP64 value of 2^62 or more. It judges nothing else: whatever
/// passes is read, and judged, by ZIPFoundation.
enum ZipPreflight {
    static let limit: UInt64 = 1 << 62

    static func check(_ data: Data, path: String) throws {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let length = raw.count
            func u16(_ at: Int) -> UInt64 { UInt64(raw.loadUnaligned(fromByteOffset: at, as: UInt16.self).littleEndian) }
            func u32(_ at: Int) -> UInt64 { UInt64(raw.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian) }
            func u64(_ at: Int) -> UInt64 { raw.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian }
            func fits(_ at: Int, _ size: Int) -> Bool { at >= 0 && size <= length && at <= length - size }
            func refuse(_ what: String) -> WeightsError {
                WeightsError(.corrupt, path, "a zip whose \(what) is impossibly large; the file is damaged")
            }
            /// Every 8-byte value of the ZIP64 extra blocks in `extra` bytes at `at`.
            func checkExtra(_ at: Int, _ count: Int) throws {
                var position = at
                let end = at + count
                while position + 4 <= end {
                    let id = u16(position), size = Int(u16(position + 2))
                    let body = position + 4
                    guard body + size <= end else { break }
                    if id == 0x0001 {
                        var field = body
                        while field + 8 <= body + size {
                            guard u64(field) < limit else { throw refuse("ZIP64 size or offset") }
                            field += 8
                        }
                    }
                    position = body + size
                }
            }

            // The end-of-central-directory record: the last signature in the file, as ZIPFoundation finds it.
            var eocd = length - 22
            while eocd >= 0 && u32(eocd) != 0x0605_4B50 { eocd -= 1 }
            guard eocd >= 0, fits(eocd, 22) else { return }
            var entries = u16(eocd + 10), directory = u32(eocd + 16)
            let zip64 = eocd - 20 - 56
            if zip64 >= 0, u32(eocd - 20) == 0x0706_4B50, u32(zip64) == 0x0606_4B50 {
                for field in [zip64 + 24, zip64 + 32, zip64 + 40, zip64 + 48] where u64(field) >= limit {
                    throw refuse("ZIP64 end-of-directory record")
                }
                (entries, directory) = (u64(zip64 + 32), u64(zip64 + 48))
            }
            guard directory <= UInt64(length) else { return }
            var position = Int(directory)
            for _ in 0..<min(entries, UInt64(length / 46 + 1)) {
                guard fits(position, 46), u32(position) == 0x0201_4B50 else { return }
                let name = Int(u16(position + 28)), extra = Int(u16(position + 30)), comment = Int(u16(position + 32))
                guard fits(position + 46, name + extra) else { return }
                try checkExtra(position + 46 + name, extra)
                // The local header, located by the 32-bit offset or a ZIP64 one (checked above).
                var local = u32(position + 42)
                if local == 0xFFFF_FFFF {
                    var block = position + 46 + name
                    while block + 4 <= position + 46 + name + extra {
                        let size = Int(u16(block + 2))
                        if u16(block) == 0x0001 && size >= 8 && block + 4 + size <= position + 46 + name + extra {
                            // The offset follows the sizes that are themselves 0xFFFFFFFF in the entry.
                            var field = block + 4
                            if u32(position + 24) == 0xFFFF_FFFF { field += 8 }
                            if u32(position + 20) == 0xFFFF_FFFF { field += 8 }
                            if field + 8 <= block + 4 + size { local = u64(field) }
                        }
                        block += 4 + size
                    }
                }
                if local < UInt64(length), fits(Int(local), 30), u32(Int(local)) == 0x0403_4B50 {
                    let localName = Int(u16(Int(local) + 26)), localExtra = Int(u16(Int(local) + 28))
                    if fits(Int(local) + 30 + localName, localExtra) { try checkExtra(Int(local) + 30 + localName, localExtra) }
                }
                position += 46 + name + extra + comment
            }
        }
    }
}
