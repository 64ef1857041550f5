# Build: docker build -t coregate .
# Run:   docker run --rm -p 8080:8080 -v $PWD/config:/etc/coregate coregate
# Reload: docker kill -s HUP <container>   (the mounted file is validated first)
# Admin API and metrics: add [admin] listen = "0.0.0.0:9901" with a token, and -p 9901:9901.
# io_uring inside containers needs a seccomp profile that allows io_uring_setup/enter (Docker's
# default profile blocks them since 25.0); without it coregate falls back to epoll by itself.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked && strip target/release/coregate

FROM debian:bookworm-slim
COPY --from=build /src/target/release/coregate /usr/local/bin/coregate
COPY config/coregate.toml /etc/coregate/coregate.toml
# Inside a container the default config must listen on every interface.
RUN sed -i 's/127.0.0.1:8080/0.0.0.0:8080/' /etc/coregate/coregate.toml
EXPOSE 8080
USER nobody
ENTRYPOINT ["/usr/local/bin/coregate"]
CMD ["run", "--config", "/etc/coregate/coregate.toml"]
