import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 file server on 127.0.0.1 for download tests: serves byte blobs by path,
/// honours `Range: bytes=N-`, and can misbehave on purpose (die halfway, corrupt a byte).
final class LocalHTTPServer: @unchecked Sendable {
    enum Behaviour: Sendable { case normal, dieHalfway, corruptOneByte }

    private let lock = NSLock()
    private var files: [String: (Data, Behaviour)] = [:]
    private var log: [(path: String, range: String?)] = []
    private let listener: Int32
    let port: UInt16
    private var thread: Thread?

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = UInt16(bigEndian: address.sin_port)
        // The thread keeps the server alive until stop() closes the socket and the loop ends.
        let thread = Thread { self.acceptLoop() }
        self.thread = thread
        thread.start()
    }

    var baseURL: String { "http://127.0.0.1:\(port)/" }

    func serve(_ path: String, _ data: Data, behaviour: Behaviour = .normal) {
        lock.lock(); files[path] = (data, behaviour); lock.unlock()
    }

    /// (path, Range header) of every request so far.
    var requests: [(path: String, range: String?)] {
        lock.lock(); defer { lock.unlock() }
        return log
    }

    /// Stops accepting. The listening socket is closed by the accept loop itself when it ends:
    /// closed here, its descriptor number could be reused by another test's server while this
    /// loop is still between two accept() calls, which would then serve that server's
    /// connections from this server's files (a 404 seen under a loaded CI run).
    func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
        shutdown(listener, Int32(SHUT_RDWR))
    }

    private var stopped = false

    private func acceptLoop() {
        defer { close(listener) }
        while true {
            lock.lock()
            let done = stopped
            lock.unlock()
            if done { return }
            let connection = accept(listener, nil, nil)
            if connection < 0 { return }
            handle(connection)
            // A graceful close: FIN, then read what the client still sends until it closes (or half a
            // second passes). A plain close() with unread bytes sends a reset, which can make the
            // client drop body bytes it had already received (seen under a loaded CI run: the
            // half-body of .dieHalfway never reached the partial file).
            shutdown(connection, Int32(SHUT_WR))
            var timeout = timeval(tv_sec: 0, tv_usec: 500_000)
            setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var drain = [UInt8](repeating: 0, count: 4096)
            while recv(connection, &drain, drain.count, 0) > 0 {}
            close(connection)
        }
    }

    private func handle(_ connection: Int32) {
        var request = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while request.count < 65536, request.range(of: Data("\r\n\r\n".utf8)) == nil {
            let n = recv(connection, &buffer, buffer.count, 0)
            if n <= 0 { return }
            request.append(contentsOf: buffer[0..<n])
        }
        let lines = String(decoding: request, as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines.first?.split(separator: " ") ?? []
        let path = parts.count > 1 ? String(parts[1].dropFirst()) : ""
        let range = lines.first { $0.lowercased().hasPrefix("range:") }.map { $0.dropFirst(6).trimmingCharacters(in: .whitespaces) }
        lock.lock()
        log.append((path, range))
        let entry = files[path]
        lock.unlock()
        guard let (data, behaviour) = entry else {
            send(connection, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        }
        var start = 0
        if let range, range.hasPrefix("bytes="), let from = Int(range.dropFirst(6).split(separator: "-").first ?? "") {
            start = min(from, data.count)
        }
        var body = data.subdata(in: start..<data.count)
        if behaviour == .corruptOneByte, !body.isEmpty { body[body.count / 2] ^= 0xFF }
        let status = start > 0 ? "206 Partial Content" : "200 OK"
        var header = "HTTP/1.1 \(status)\r\nContent-Type: application/octet-stream\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        if start > 0 { header += "Content-Range: bytes \(start)-\(data.count - 1)/\(data.count)\r\n" }
        send(connection, header + "\r\n")
        if behaviour == .dieHalfway && start == 0 { body = body.prefix(body.count / 2) }
        send(connection, body)
    }

    private func send(_ connection: Int32, _ text: String) { send(connection, Data(text.utf8)) }

    private func send(_ connection: Int32, _ data: Data) {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.send(connection, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                offset += n
            }
        }
    }
}
