import Foundation

/// Runs a stream of items (a video's frames) through three overlapping stages: one thread reads
/// ahead (`next`: decoding), `concurrent` threads run `process` (the network) on the items read,
/// and the calling thread hands each result to `deliver` (drawing, encoding, the JSON line)
/// strictly in stream order, while the next items are processed (write-behind). At most
/// `readAhead` items wait to be processed and at most `readAhead` results wait to be delivered,
/// so memory stays bounded whatever the stream's length. The first error stops every stage
/// (results before it stay delivered) and is rethrown.
public enum OrderedStream {
    public static func run<Item, Output>(
        concurrent: Int, readAhead: Int,
        next: @escaping () throws -> Item?,
        process: @escaping (Item) throws -> Output,
        deliver: (Item, Output) throws -> Void
    ) throws {
        let state = StreamState<Item, Output>(capacity: max(1, readAhead))
        let reader = Unchecked(next), work = Unchecked(process)
        var finished: [DispatchSemaphore] = []
        func spawn(_ body: @escaping @Sendable () -> Void) {
            let done = DispatchSemaphore(value: 0)
            let thread = Thread { body(); done.signal() }
            thread.stackSize = 8 << 20
            thread.start()
            finished.append(done)
        }
        spawn {
            do {
                while let item = try reader.value() {
                    guard state.put(item) else { break }
                }
                state.endInput()
            } catch {
                state.fail(error)
            }
        }
        for _ in 0..<max(1, concurrent) {
            spawn {
                while let (sequence, item) = state.take() {
                    do {
                        state.finish(sequence, item, try work.value(item))
                    } catch {
                        state.fail(error)
                    }
                }
            }
        }
        do {
            while let (item, output) = try state.nextResult() { try deliver(item, output) }
        } catch {
            state.fail(error)
        }
        for done in finished { done.wait() }
        if let error = state.error { throw error }
    }
}

/// The queues between the stages, under one lock.
private final class StreamState<Item, Output>: @unchecked Sendable {
    private let condition = NSCondition()
    private let capacity: Int
    private var waiting: [(Int, Item)] = []
    private var results: [Int: (Item, Output)] = [:]
    private var read = 0, delivered = 0
    private var inputEnded = false
    private(set) var error: Error?

    init(capacity: Int) { self.capacity = capacity }

    /// Queues an item read; false when the stream stopped.
    func put(_ item: Item) -> Bool {
        condition.withLock {
            while waiting.count >= capacity && error == nil { condition.wait() }
            guard error == nil else { return false }
            waiting.append((read, item))
            read += 1
            condition.broadcast()
            return true
        }
    }

    func endInput() {
        condition.withLock {
            inputEnded = true
            condition.broadcast()
        }
    }

    /// The next item to process with its place in the stream, or nil at the end.
    func take() -> (Int, Item)? {
        condition.withLock {
            while error == nil && (waiting.isEmpty && !inputEnded || results.count >= capacity) { condition.wait() }
            guard error == nil, !waiting.isEmpty else { return nil }
            condition.broadcast()
            return waiting.removeFirst()
        }
    }

    func finish(_ sequence: Int, _ item: Item, _ output: Output) {
        condition.withLock {
            results[sequence] = (item, output)
            condition.broadcast()
        }
    }

    /// The next result in stream order, or nil once every item read is delivered.
    func nextResult() throws -> (Item, Output)? {
        try condition.withLock {
            while error == nil && results[delivered] == nil && !(inputEnded && delivered == read) { condition.wait() }
            if let error { throw error }
            guard let result = results.removeValue(forKey: delivered) else { return nil }
            delivered += 1
            condition.broadcast()
            return result
        }
    }

    func fail(_ failure: Error) {
        condition.withLock {
            if error == nil { error = failure }
            condition.broadcast()
        }
    }
}
