/**
 * Sequence classification on BERT (`bert.*` + `classifier`) and RoBERTa (`roberta.*` +
 * `classifier.dense` / `classifier.out_proj`), as Hugging Face's `*ForSequenceClassification`.
 */
import { tf, type Tensor } from '../tensor/tf.js';
import { Module, type TensorLayer } from '../nn/module.js';
import { Dropout, Linear } from '../nn/layers.js';
import { PreTrainedModel, type HFConfig, type ModelInputs, type ModelOutput } from './base.js';
import { BertModel, type BertDims } from './bert.js';
import { ConfigReader, numLabelsOf, problemTypeOf } from './config.js';
import { classificationLoss, tidyOutput } from './common.js';

/** HF `classifier_dropout`, falling back to `hidden_dropout_prob`. */
function classifierDropout(config: HFConfig, dims: BertDims): number {
  const r = new ConfigReader(config, 'config');
  return config.classifier_dropout === undefined || config.classifier_dropout === null
    ? dims.hiddenDropout
    : r.prob('classifier_dropout', dims.hiddenDropout);
}

/** RoBERTa's head: `out_proj(dropout(tanh(dense(dropout(h[:, 0])))))`. */
export class RobertaClassificationHead extends Module {
  declare dense: TensorLayer;
  declare dropout: Dropout;
  declare out_proj: TensorLayer;

  constructor(hidden: number, numLabels: number, dropout: number) {
    super();
    this.registerModule('dense', new Linear(hidden, hidden));
    this.registerModule('dropout', new Dropout(dropout));
    this.registerModule('out_proj', new Linear(hidden, numLabels));
  }

  /** [B, T, H] → [B, numLabels] from the first (<s>) token. */
  forward(hidden: Tensor): Tensor {
    return tf.tidy(() => {
      const [b, , h] = hidden.shape as number[];
      const first = hidden.slice([0, 0, 0], [b!, 1, h!]).reshape([b!, h!]); // [B, H]
      const x = tf.tanh(this.dense.forward(this.dropout.forward(first))); // [B, H]
      return this.out_proj.forward(this.dropout.forward(x)); // [B, numLabels]
    });
  }
}

/**
 * `BertForSequenceClassification` / `RobertaForSequenceClassification` (chosen by `model_type`).
 * Labels: int32 [B] class ids (cross-entropy) or float32 [B] targets when `num_labels` is 1 (MSE).
 *
 * @example
 * const model = new BertForSequenceClassification({ ...bertConfig, id2label: { 0: 'neg', 1: 'pos' } });
 * const { logits, loss } = model.forward({ inputIds, attentionMask, labels }); // logits [B, 2]
 */
export class BertForSequenceClassification extends PreTrainedModel {
  declare dropout: Dropout | undefined;
  declare classifier: TensorLayer;
  readonly modelType: 'bert' | 'roberta';
  readonly taskType = 'SEQ_CLS' as const;
  readonly architecture: string;
  readonly numLabels: number;
  /** The encoder under its HF prefix (`bert` or `roberta`). */
  readonly basePrefix: 'bert' | 'roberta';

  constructor(readonly config: HFConfig) {
    super();
    const roberta = config.model_type === 'roberta';
    this.modelType = roberta ? 'roberta' : 'bert';
    this.basePrefix = roberta ? 'roberta' : 'bert';
    this.architecture = roberta ? 'RobertaForSequenceClassification' : 'BertForSequenceClassification';
    this.numLabels = numLabelsOf(config);
    const encoder = new BertModel(config, { addPoolingLayer: !roberta });
    this.registerModule(this.basePrefix, encoder);
    const dropout = classifierDropout(config, encoder.dims);
    if (roberta) {
      this.registerModule(
        'classifier',
        new RobertaClassificationHead(encoder.dims.hidden, this.numLabels, dropout),
      );
    } else {
      this.registerModule('dropout', new Dropout(dropout));
      this.registerModule('classifier', new Linear(encoder.dims.hidden, this.numLabels));
    }
  }

  /** The encoder (`this.bert` or `this.roberta`). */
  get encoder(): BertModel {
    return this.getSubmodule(this.basePrefix) as BertModel;
  }

  forward(inputs: ModelInputs): ModelOutput {
    return tidyOutput(() => {
      const { lastHiddenState, pooled } = this.encoder.encode(inputs); // [B, T, H], [B, H]
      const logits = this.dropout
        ? this.classifier.forward(this.dropout.forward(pooled!)) // [B, numLabels]
        : this.classifier.forward(lastHiddenState); // [B, numLabels] (RoBERTa head reads token 0)
      if (!inputs.labels) return { logits };
      const problem = problemTypeOf(this.config, this.numLabels);
      return { logits, loss: classificationLoss(logits, inputs.labels, problem, this.architecture) };
    });
  }

  outputModuleNames(): string[] {
    return ['classifier'];
  }
}
