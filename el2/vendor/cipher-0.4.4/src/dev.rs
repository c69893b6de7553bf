mod block;
mod stream;
