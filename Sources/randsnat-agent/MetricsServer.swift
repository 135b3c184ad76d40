import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// `GET /metrics` and `GET /healthz` over HTTP/1.1 (SwiftNIO). Guards against clients that would
/// hold resources: at most `maxConnections` open at once (more are closed on accept), and a
/// connection that has not completed a request `idleTimeout` after it opened or after its last
/// answer is closed, so a slow or silent client costs one connection for a bounded time.
/// NIO's HTTP decoder bounds a request head's size and answers malformed requests with 400.
enum MetricsServer {
    static let maxConnections = 2048
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
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(collector: collector))
                }
            }
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 4)
            .bind(host: host, port: port).wait()
    }
}

final class MetricsHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let collector: Collector
    private var head: HTTPRequestHead?
    private var deadline: Scheduled<Void>?

    init(collector: Collector) { self.collector = collector }

    func handlerAdded(context: ChannelHandlerContext) { arm(context) }

    func handlerRemoved(context: ChannelHandlerContext) { deadline?.cancel() }

    private func arm(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: MetricsServer.idleTimeout) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break  // no endpoint takes a body; its bytes are dropped as they come
        case .end:
            guard let head else { return }
            self.head = nil
            respond(context, head)
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
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
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
        arm(context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
