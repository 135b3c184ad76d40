import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// `GET /metrics` and `GET /healthz` over HTTP/1.1 (SwiftNIO). The endpoint is on the node's address,
/// so whatever a client does, what it costs the agent is bounded:
/// - at most `maxConnections` open at once (more are closed on accept);
/// - one request at a time per connection: reading stops while a response is written (the socket's
///   own buffer is the only queue), and a request that arrives before the answer to the previous one
///   is complete (pipelining) is not answered: the connection closes once that answer is out. A
///   client that sends requests and never reads its answers thus holds one answer, not thousands;
/// - at most `maxRequestBytes` read per request (the head, and any body, which no endpoint takes);
/// - `idleTimeout` for each step: a connection that has not sent a whole request within it after it
///   opened or after its last answer, or whose answer the client has not taken within it, is closed,
///   so a slow or silent client costs one connection for a bounded time.
enum MetricsServer {
    static let maxConnections = 2048
    static let maxRequestBytes = 8192
    static let idleTimeout = TimeAmount.seconds(10)

    static func start(host: String, port: Int, group: any EventLoopGroup, collector: Collector) throws -> any Channel {
        let open = Atomic<Int>(0)
        return try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let count = open.wrappingAdd(1, ordering: .relaxed).newValue
                channel.closeFuture.whenComplete { _ in open.wrappingSubtract(1, ordering: .relaxed) }
                guard count <= maxConnections else { return channel.close() }
                return channel.eventLoop.makeCompletedFuture {
                    let budget = RequestBudget()
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(budget)
                    try pipeline.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
                    try pipeline.addHandler(HTTPResponseEncoder())
                    // Answers a request the decoder refuses with 400, then closes.
                    try pipeline.addHandler(HTTPServerProtocolErrorHandler())
                    try pipeline.addHandler(MetricsHandler(collector: collector, budget: budget))
                }
            }
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // The handler asks for each read: none while an answer is being written.
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 4096))
            .bind(host: host, port: port).wait()
    }
}

/// Counts the bytes a connection sends for one request; past `MetricsServer.maxRequestBytes` it is closed.
final class RequestBudget: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var used = 0

    /// A new request may come: called once an answer is out (reading was stopped until then, so
    /// what is read from here on is the next request's).
    func reset() { used = 0 }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        used += unwrapInboundIn(data).readableBytes
        guard used <= MetricsServer.maxRequestBytes else {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}

final class MetricsHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let collector: Collector
    let budget: RequestBudget
    private var head: HTTPRequestHead?
    /// An answer is being written: nothing is read meanwhile.
    private var answering = false
    /// A request came while answering: close once the answer is out.
    private var closeAfterAnswer = false
    private var deadline: Scheduled<Void>?

    init(collector: Collector, budget: RequestBudget) {
        self.collector = collector
        self.budget = budget
    }

    func handlerAdded(context: ChannelHandlerContext) { arm(context) }

    func handlerRemoved(context: ChannelHandlerContext) { deadline?.cancel() }

    func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    /// Asks for more of a request until one is whole (the channel reads only when asked).
    func channelReadComplete(context: ChannelHandlerContext) {
        if !answering && !closeAfterAnswer { context.read() }
        context.fireChannelReadComplete()
    }

    private func arm(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: MetricsServer.idleTimeout) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if answering { closeAfterAnswer = true } else { self.head = head }
        case .body: break  // no endpoint takes a body; its bytes are dropped as they come (and counted by the budget)
        case .end:
            guard !answering, let head else { return }
            self.head = nil
            respond(context, head)
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        answering = true
        arm(context)  // the client has idleTimeout to take the answer
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let (status, type, body): (HTTPResponseStatus, String, String) = switch (head.method, path) {
        case (.GET, "/metrics"), (.HEAD, "/metrics"): (.ok, "text/plain; version=0.0.4; charset=utf-8", collector.render())
        case (.GET, "/healthz"), (.HEAD, "/healthz"): (.ok, "text/plain; charset=utf-8", "ok\n")
        case (_, "/metrics"), (_, "/healthz"): (.methodNotAllowed, "text/plain; charset=utf-8", "only GET\n")
        default: (.notFound, "text/plain; charset=utf-8", "not found: randsnat-agent serves /metrics and /healthz\n")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        let keepAlive = head.isKeepAlive
        let channel = context.channel
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { result in
            let (handler, context) = loopBound.value
            handler.answering = false
            guard case .success = result, keepAlive, !handler.closeAfterAnswer else {
                channel.close(promise: nil)
                return
            }
            handler.budget.reset()
            handler.arm(context)  // the next request has idleTimeout to come whole
            context.read()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
