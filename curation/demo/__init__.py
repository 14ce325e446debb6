"""The generated demo world: crawl generator, fact base, text banks and ground truth. The real chain never imports it."""
