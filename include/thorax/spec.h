/* spec.h - the plain descriptions of a network, a loss and an optimiser.
 *
 * Why a module of its own: the configuration (src/config) reads these from
 * YAML and the network code (src/nn) builds from them, and neither should
 * know the other. Both depend on this header, which depends on libc alone:
 * types, limits and the names the config spells them with, no behaviour.
 */
#ifndef THORAX_SPEC_H
#define THORAX_SPEC_H

#define TH_MAX_LAYERS 128   /* entries of model.layers (a block counts as one) */
#define TH_MAX_NODES 4096   /* layers once the blocks are expanded */
#define TH_MAX_FROM 4       /* inputs of one layer (add, concat) */
#define TH_NAME_MAX 48
/* `out: labels` in a dense layer: as many outputs as the run has labels. */
#define TH_OUT_LABELS (-1)

typedef enum th_layer_type {
    TH_LAYER_CONV = 0,
    TH_LAYER_RELU,
    TH_LAYER_MAXPOOL,
    TH_LAYER_AVGPOOL,
    TH_LAYER_BATCHNORM,
    TH_LAYER_GAP,
    TH_LAYER_DENSE,
    TH_LAYER_DROPOUT,
    TH_LAYER_ADD,        /* elementwise sum of its inputs (same shape) */
    TH_LAYER_CONCAT,     /* its inputs' channels one after the other (same H, W) */
    TH_LAYER_FLATTEN,    /* [C,H,W] -> [C*H*W,1,1] in PyTorch's order, for a dense head on feature maps */
    /* Blocks: expanded into the layers above by th_model_graph. */
    TH_LAYER_RESBLOCK,   /* ResNet basic block */
    TH_LAYER_DENSEBLOCK, /* DenseNet dense block */
    TH_LAYER_TRANSITION, /* DenseNet transition */
    TH_LAYER_BOTTLENECK, /* ResNet bottleneck block (ResNet-50/101/152) */
    TH_LAYER_TYPE_COUNT
} th_layer_type;

/* One layer as the config describes it. Fields a type does not use are 0. */
typedef struct th_layer_spec {
    th_layer_type type;
    char name[TH_NAME_MAX]; /* "" = automatic: conv1, bn1, fc (fc1, fc2 when several), block1 ... */
    /* The layers it reads, by name ("input" = the image); none = the layer
     * before it. add and concat need two or more. */
    char from[TH_MAX_FROM][TH_NAME_MAX];
    int n_from;
    int out;                /* conv, resblock, bottleneck, transition: filters; dense: units or TH_OUT_LABELS */
    int k;                  /* conv and pool kernel size */
    int stride;             /* conv, resblock and bottleneck (default 1), pool (default k) */
    int pad;                /* conv, maxpool */
    int layers;             /* denseblock: dense layers */
    int growth;             /* denseblock: filters each dense layer adds (default 32) */
    int bn_size;            /* denseblock: bottleneck width in multiples of growth (default 4) */
    int width;              /* bottleneck: filters of its 1x1 and 3x3 convs (default out / 4) */
    int bias;               /* conv and dense: 1 = has a bias (default) */
    float p;                /* dropout probability */
    float momentum, eps;    /* batch-norm (defaults 0.1, 1e-5) */
    int line;               /* line in the config file, for error messages; 0 if none */
} th_layer_spec;

typedef struct th_model_spec {
    int c, h, w;            /* input shape of one image */
    int n_layers;
    th_layer_spec layers[TH_MAX_LAYERS];
} th_model_spec;

/* The config's spelling of each layer type ("conv", "batchnorm" ...). */
const char *th_layer_type_name(th_layer_type t);
/* Returns -1 for an unknown name. */
int th_layer_type_parse(const char *s, th_layer_type *t);

typedef enum th_loss_type {
    TH_LOSS_WEIGHTED_BCE = 0,
    TH_LOSS_BCE,
    TH_LOSS_SOFTMAX_CE,
} th_loss_type;

typedef enum th_optim_type {
    TH_OPTIM_SGD = 0,
    TH_OPTIM_ADAM,
} th_optim_type;

typedef struct th_optim_config {
    th_optim_type type;
    float lr;
    float momentum;      /* SGD */
    int nesterov;        /* SGD */
    float weight_decay;
    float beta1, beta2;  /* Adam */
    float eps;           /* Adam */
} th_optim_config;

/* The arithmetic of the convolutions' and dense layers' GEMMs
 * (runtime.precision): fp32 throughout, or bf16 inputs (activations,
 * columns and weights rounded to bfloat16) with fp32 accumulation and
 * output. Parameters, optimiser state, batch-norm and loss stay fp32. */
typedef enum th_precision { TH_PRECISION_FP32, TH_PRECISION_BF16 } th_precision;

/* The config's spellings of the loss and optimiser types and of the
 * precision, in enum order, NULL-terminated: train.loss,
 * train.optimizer.type and runtime.precision. */
extern const char *const th_loss_names[];
extern const char *const th_optim_names[];
extern const char *const th_precision_names[];

#endif
