"""The networks affectflow rebuilds in plain torch (no timm, no torchvision), with upstream's module names.

Each module defines one family's ``nn.Module`` s and registers a builder per
architecture name with :func:`~affectflow.models.networks.registry.register_network`;
:func:`affectflow.models.networks.build.build_network` looks a name up (after
importing every registering module). The same builders serve the torch engine,
which loads a verified file's weights into them, and the random-weight stand-ins,
which are exported from them, so the two never disagree about which network a
model is. Nothing here reads a weight file except through
:mod:`affectflow.models.catalogue`.
"""
