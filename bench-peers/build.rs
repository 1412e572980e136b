//! Generates the tonic service and client for the gRPC peer from Rust definitions
//! (`tonic_build::manual`), so no `protoc` is needed; the messages are hand-written `prost`
//! structs in `src/grpc.rs`.

fn main() {
    let method = |name: &str, route: &str, input: &str, output: &str| {
        tonic_build::manual::Method::builder()
            .name(name)
            .route_name(route)
            .input_type(input)
            .output_type(output)
            .codec_path("tonic_prost::ProstCodec")
            .build()
    };
    let service = tonic_build::manual::Service::builder()
        .name("Bench")
        .package("lpcbench")
        .method(method(
            "add",
            "Add",
            "crate::grpc::AddRequest",
            "crate::grpc::AddReply",
        ))
        .method(method(
            "echo",
            "Echo",
            "crate::grpc::Blob",
            "crate::grpc::Blob",
        ))
        .build();
    tonic_build::manual::Builder::new().compile(&[service]);
}
