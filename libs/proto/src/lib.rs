//! Generated code for every CareLoop contract, and the descriptor set for gRPC reflection.

/// The encoded `FileDescriptorSet` of all CareLoop protos.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/careloop_descriptor.bin"));

pub mod audit {
    pub mod v1 {
        tonic::include_proto!("careloop.audit.v1");
    }
}

pub mod common {
    pub mod v1 {
        tonic::include_proto!("careloop.common.v1");
    }
}

pub mod events {
    pub mod v1 {
        tonic::include_proto!("careloop.events.v1");
    }
}

pub mod plans {
    pub mod v1 {
        tonic::include_proto!("careloop.plans.v1");
    }
}

pub mod referrals {
    pub mod v1 {
        tonic::include_proto!("careloop.referrals.v1");
    }
}

pub mod priorauth {
    pub mod v1 {
        tonic::include_proto!("careloop.priorauth.v1");
    }
}

pub mod notifications {
    pub mod v1 {
        tonic::include_proto!("careloop.notifications.v1");
    }
}

pub mod metrics {
    pub mod v1 {
        tonic::include_proto!("careloop.metrics.v1");
    }
}

pub mod gateway {
    pub mod v1 {
        tonic::include_proto!("careloop.gateway.v1");
    }
}
